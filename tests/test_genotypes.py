import pytest

from harness.errors import HarnessError
from harness.genotypes import DartsGenotype, NB201Genotype, parse_darts, parse_genotype, parse_nb201

DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)
ARCH_11 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"


def test_darts_round_trip_is_canonical():
    g = parse_darts(DARTS_V2)
    assert isinstance(g, DartsGenotype)
    assert g.normal[7] == ("dil_conv_3x3", 2)
    assert g.to_string() == DARTS_V2
    assert parse_genotype(g.to_string()) == g


def test_darts_accepts_range_concat_and_spacing():
    text = DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)").replace(", ", ",")
    assert parse_darts(text) == parse_darts(DARTS_V2)


def test_nb201_round_trip():
    g = parse_nb201(ARCH_11)
    assert g == NB201Genotype(("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "none", "nor_conv_3x3", "avg_pool_3x3"))
    assert g.to_string() == ARCH_11


SPARSE = (  # EnTranNAS-DST style: any number of inputs per node, two ops on one edge allowed
    "Genotype(normal=[[('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_5x5', 1)], [('dil_conv_3x3', 0)], "
    "[('skip_connect', 0), ('sep_conv_3x3', 3)], [('skip_connect', 3), ('skip_connect', 4), ('max_pool_3x3', 1)]], "
    "normal_concat=[2, 3, 4, 5], reduce=[[('max_pool_3x3', 0)], [('max_pool_3x3', 1), ('skip_connect', 2)], "
    "[('skip_connect', 2)], [('max_pool_3x3', 1)]], reduce_concat=[2, 3, 4, 5])"
)


def test_variable_in_degree_round_trip():
    g = parse_darts(SPARSE)
    assert not g.standard
    assert g.degree("normal") == (3, 1, 2, 3) and g.degree("reduce") == (1, 2, 1, 1)
    assert g.nodes("normal")[0] == (("sep_conv_3x3", 0), ("skip_connect", 1), ("sep_conv_5x5", 1))
    assert g.steps == 4
    assert g.to_string() == SPARSE
    assert parse_genotype(g.to_string()) == g


def test_nested_form_with_two_inputs_per_node_is_the_flat_genotype():
    flat = parse_darts(DARTS_V2)
    nested = DartsGenotype.from_nodes(flat.nodes("normal"), flat.normal_concat, flat.nodes("reduce"),
                                      flat.reduce_concat)
    assert nested == flat and nested.standard
    assert nested.to_string() == DARTS_V2  # printed in the format every DARTS tool reads
    text = "Genotype(normal=[" + ", ".join(str(list(n)) for n in flat.nodes("normal")) + "], normal_concat=[2, 3, 4, 5], " \
           "reduce=[" + ", ".join(str(list(n)) for n in flat.nodes("reduce")) + "], reduce_concat=[2, 3, 4, 5])"
    assert parse_darts(text) == flat


def test_degree_must_match_the_pairs():
    with pytest.raises(HarnessError, match="sums to 3"):
        DartsGenotype((("skip_connect", 0),) * 4, (2,), (("skip_connect", 0),) * 4, (2,), normal_degree=(1, 2))


@pytest.mark.parametrize("bad, fragment", [
    ("Genotype(normal=[[('skip_connect', 0)], []], normal_concat=[2], reduce=[[('a', 0)], [('b', 1)]], reduce_concat=[2])", "node 3) has no input"),
    ("Genotype(normal=[[('skip_connect', 0)], [('skip_connect', 3)]], normal_concat=[2], reduce=[[('a', 0)], [('b', 1)]], reduce_concat=[2])", "normal[1][0]"),
    ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], reduce=[('x', 0)], reduce_concat=[2])", "two"),
    ("Genotype(normal=[('sep_conv_3x3', 7), ('sep_conv_3x3', 1)], normal_concat=[2], reduce=[('a', 0), ('b', 1)], reduce_concat=[2])", "0..1"),
    ("Genotype(normal=[], normal_concat=[2])", "missing"),
    ("Genotype(normal=__import__('os'))", "malformed"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~1|", "3 '+'-separated"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~2|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|", "op~1"),
    ("not a genotype", "expected a DARTS genotype"),
])
def test_malformed_genotypes_name_the_problem(bad, fragment):
    with pytest.raises(HarnessError, match="malformed") as err:
        parse_genotype(bad)
    assert fragment in str(err.value)
