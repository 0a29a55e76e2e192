"""Attention analysis: maps, attention-to-property counts and their nulls, profiles, BLOSUM62,
and contact maps from real structures."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from plmxai.attention.analysis import (
    AMINO_ACIDS,
    PropertyCounts,
    attention_maps,
    blosum_correlation,
    layer_profiles,
    residue_properties,
)


def test_attention_maps_are_the_models_eager_weights_without_special_tokens(tiny_model, tiny_tokens):
    assert tiny_model.config._attn_implementation != "eager"
    seen = dict(attention_maps(tiny_model, tiny_tokens, batch_size=2))
    assert sorted(seen) == list(range(len(tiny_tokens)))
    assert tiny_model.config._attn_implementation != "eager"  # restored
    row = tiny_tokens.iloc[2]
    ids = torch.as_tensor(np.asarray(row["input_ids"], dtype=np.int64))[None]
    tiny_model.set_attn_implementation("eager")
    with torch.no_grad():
        full = torch.stack(tiny_model.esm(input_ids=ids, output_attentions=True).attentions, 1)[0]
    tiny_model.set_attn_implementation("sdpa")
    n = row["n_residues"]
    assert seen[2].shape == (2, 4, n, n)
    # padding in the batch does not change a protein's map; no renormalisation after dropping
    # <cls> and <eos>
    np.testing.assert_allclose(seen[2], full[:, :, 1 : n + 1, 1 : n + 1].numpy(), atol=1e-6)
    assert (seen[2].sum(-1) < 1 + 1e-5).all() and (seen[2].sum(-1) < 1 - 1e-4).any()


def _maps(n, target_cols, rng, layers=1, heads=2):
    """Head 0 puts 0.9 of every row on the first target column; head 1 spreads evenly."""
    att = np.full((layers, heads, n, n), 1.0 / n, dtype=np.float32)
    att[:, 0] = 0.1 / n
    att[:, 0, :, target_cols[0]] += 0.9
    return att


def test_property_counts_find_the_attended_annotation():
    rng = np.random.default_rng(0)
    counts = PropertyCounts(1, 2, ["active_site"] + list(AMINO_ACIDS), theta=0.3, draws=999, seed=0)
    for p in range(30):
        n = 40
        seq = "".join(rng.choice(list(AMINO_ACIDS), n))
        site = int(rng.integers(0, n))
        mask = np.zeros(n, bool)
        mask[site] = True
        counts.add(
            f"P{p}", _maps(n, [site], rng), residue_properties(seq, {"active_site": mask}, ["active_site"])
        )
    t = counts.table(min_pairs=100).set_index(["head", "property"])
    site = t.loc[(0, "active_site")]
    assert site["n_high_pairs"] == 30 * 40 and site["proportion"] == 1.0
    assert site["background"] == pytest.approx(1 / 40)
    assert site["p_permutation"] == pytest.approx(1 / 1000) and site["significant"] and site["significant_z"]
    # head 1 never exceeds theta: no pairs, not tested
    assert t.loc[(1, "active_site"), "n_high_pairs"] == 0 and not t.loc[(1, "active_site"), "tested"]
    assert np.isnan(t.loc[(1, "active_site"), "q_permutation"])
    # amino acids: head 0's attention goes to whatever residue the site has, near background
    aa = t.xs(0, level="head").loc[list(AMINO_ACIDS)]
    assert aa["proportion"].sum() == pytest.approx(1.0)
    assert aa["n_tests"].iloc[0] == 21  # one head x (1 annotation + 20 amino acids)


def test_property_counts_null_is_not_significant_for_random_targets():
    rng = np.random.default_rng(1)
    counts = PropertyCounts(1, 2, ["active_site"], theta=0.3, draws=199, seed=0)
    for p in range(40):
        n = 50
        mask = np.zeros(n, bool)
        mask[rng.choice(n, 5, replace=False)] = True
        col = int(rng.integers(0, n))  # attention to a residue unrelated to the annotation
        counts.add(f"P{p}", _maps(n, [col], rng), mask[:, None].astype(float))
    row = counts.table(min_pairs=100).set_index(["head", "property"]).loc[(0, "active_site")]
    assert row["background"] == pytest.approx(0.1)
    assert row["p_permutation"] > 0.05 and not row["significant"]


def test_contact_counts_and_diagonal_shift_null():
    rng = np.random.default_rng(2)
    counts = PropertyCounts(1, 2, [], theta=0.3, draws=199, seed=0)
    n = 40
    idx = np.arange(n)
    considered = np.abs(idx[:, None] - idx[None, :]) >= 6
    total_hits = total_high = 0
    for p in range(20):
        # contacts at scattered separations, as in a fold (a band at one separation would be
        # invariant under the diagonal shift, and rightly not significant)
        contacts = np.zeros((n, n), bool)
        for i in rng.choice(n, 12, replace=False):
            j = int(rng.choice(np.flatnonzero(considered[i])))
            contacts[i, j] = contacts[j, i] = True
        att = np.full((1, 2, n, n), 1.0 / n, dtype=np.float32)
        att[0, 0] = 0.0
        for i in range(n):  # head 0: each residue's first contact partner, else itself
            partners = np.flatnonzero(contacts[i])
            att[0, 0, i, partners[0] if len(partners) else i] = 0.95
            total_high += bool(len(partners))
        total_hits += contacts.any(1).sum()
        counts.add(f"C{p}", att, np.zeros((n, 0)), contacts, considered)
    t = counts.table(min_pairs=100).set_index(["head", "property"])
    c = t.loc[(0, "contact")]
    # self-attention (separation 0) is not among the pairs considered
    assert c["n_high_pairs"] == total_high and c["proportion"] == 1.0
    assert c["background"] < 0.05 and c["p_permutation"] == pytest.approx(1 / 200) and c["significant"]
    assert not t.loc[(1, "contact"), "tested"]


def test_layer_profiles_and_centre_of_gravity():
    table = pd.DataFrame(
        {
            "layer": [0, 0, 1, 1],
            "head": [0, 1, 0, 1],
            "property": "p",
            "kind": "residue",
            "proportion": [0.1, 0.3, 0.6, 0.2],
            "background": 0.1,
            "tested": True,
            "significant": [False, True, True, False],
        }
    )
    prof = layer_profiles(table).set_index("layer")
    assert prof.loc[0, "mean_proportion"] == pytest.approx(0.2) and prof.loc[
        1, "mean_ratio"
    ] == pytest.approx(4)
    assert prof.loc[0, "centre_of_gravity"] == pytest.approx((0 * 0.2 + 1 * 0.4) / 0.6)


def test_blosum_correlation_recovers_a_substitution_like_profile():
    from Bio.Align import substitution_matrices

    blosum = substitution_matrices.load("BLOSUM62")
    b = np.array([[blosum[x][y] for y in AMINO_ACIDS] for x in AMINO_ACIDS], dtype=float)
    # heads whose amino-acid profiles are random mixtures of BLOSUM62 rows: similar amino
    # acids get similar attention across heads
    rng = np.random.default_rng(0)
    prof = rng.dirichlet(np.ones(20), size=60) @ np.exp(b / 2)
    rows = [
        {
            "layer": h // 10,
            "head": h % 10,
            "property": aa,
            "kind": "amino_acid",
            "tested": True,
            "proportion": prof[h, k],
        }
        for h in range(60)
        for k, aa in enumerate(AMINO_ACIDS)
    ]
    summary, sim = blosum_correlation(pd.DataFrame(rows), n_permutations=199)
    assert summary["pearson_r"] > 0.5 and summary["p_mantel"] == pytest.approx(1 / 200)
    assert summary["n_pairs"] == 190 and sim.shape == (20, 20)
    shuffled = pd.DataFrame(rows).assign(proportion=rng.permutation(prof.ravel()))
    assert blosum_correlation(shuffled, n_permutations=199)[0]["p_mantel"] > 0.01


@pytest.mark.realdata
def test_contact_maps_match_the_counts_of_real_structures(shared_data):
    from plmxai.data.structures import best_chain, contact_map, read_chains, sequence_contacts

    chains = pd.read_csv(shared_data / "structures" / "chains.tsv", sep="\t")
    files = {}
    for r in chains.itertuples(index=False):
        c = files.setdefault(r.file, read_chains(shared_data / "structures" / "pdb" / r.file))[r.chain]
        assert (len(c.ca), c.sequence) == (r.n_ca, r.sequence_from_CA_records), (r.file, r.chain)
        assert contact_map(c.ca).sum() // 2 == r.n_ca_contacts_sep6_8A, (r.file, r.chain)
    # alignment, not numbering: a sequence with an N-terminal tag and one residue deleted maps
    # back onto the same contacts
    r = chains.iloc[0]
    chain = files[r.file][r.chain]
    seq = "MHHHHHH" + chain.sequence[:50] + chain.sequence[51:]
    m = best_chain(seq, files[r.file])
    assert m.chain == r.chain and m.identity == 1.0
    assert best_chain(seq, files[r.file], float("nan")).chain == r.chain  # a table's empty chain cell
    assert (m.to_chain[7:57] == np.arange(50)).all() and m.to_chain[57] == 51 and (m.to_chain[:7] == -1).all()
    contacts, resolved = sequence_contacts(seq, chain, m)
    assert resolved.sum() == len(chain.sequence) - 1 and not contacts[:7].any()
    full = contact_map(chain.ca)
    assert contacts[7 + 10, 7 + 40] == full[10, 40] and contacts[60, 90] == full[59, 89]


@pytest.mark.realdata
def test_binding_site_masks_from_pdb_numbering(shared_data):
    from plmxai.data.structures import binding_site_mask

    n_chains = n_sites = 0
    with open(shared_data / "binding_sites" / "pdb_chains_binding_sites.jsonl") as f:
        for line in f:
            rec = json.loads(line)
            mask, missing = binding_site_mask(rec["positions"], rec["sites"])
            assert len(mask) == len(rec["primary"]) == len(rec["positions"])
            assert mask.sum() + missing == len(set(rec["sites"])), rec["id"]
            for s in rec["sites"]:
                if s in rec["positions"]:
                    assert mask[rec["positions"].index(s)]
            n_chains += 1
            n_sites += int(mask.sum())
    assert n_chains == 1418 and n_sites > 0


@pytest.mark.realdata
def test_attention_and_probes_on_real_structures(shared_data, tiny_model, tmp_path):
    """Chains of real complexes as proteins, structures found through a mapping table: the
    contact background is the contact density in chains.tsv, and a contact probe is fitted."""
    from plmxai.config import validate_config
    from plmxai.model.esm import save_model
    from plmxai.model.tokens import esm2_tokenizer, tokenize_proteins
    from plmxai.stages.attention import attention
    from plmxai.stages.attention import probes as probe_stage

    chains = pd.read_csv(shared_data / "structures" / "chains.tsv", sep="\t")
    chains = chains[chains["n_ca"].between(60, 160)].sort_values(["n_ca", "file", "chain"]).head(16)
    chains = chains.assign(
        accession=[f"S{i:02d}" for i in range(len(chains))], split=["train", "test"] * (len(chains) // 2)
    )
    prot = pd.DataFrame(
        {
            "accession": chains["accession"],
            "sequence": chains["sequence_from_CA_records"],
            "label": "1",
            "label_id": 0,
            "split": chains["split"],
        }
    )
    tokens, _ = tokenize_proteins(prot, esm2_tokenizer())
    tokens.to_parquet(tmp_path / "tokens.parquet")
    prot.to_parquet(tmp_path / "proteins.parquet")
    pd.DataFrame(columns=["accession", "type", "pair", "start", "end"]).to_parquet(tmp_path / "ann.parquet")
    chains[["accession", "file", "chain"]].to_csv(tmp_path / "map.tsv", sep="\t", index=False)
    save_model(tiny_model, tmp_path / "model")
    cfg = validate_config(
        {
            "attention": {
                "n_shifts": 19,
                "blosum_permutations": 0,
                "min_pairs": 1,
                "structures": {
                    "folder": str(shared_data / "structures" / "pdb"),
                    "mapping": str(tmp_path / "map.tsv"),
                },
            }
        }
    )
    out = {k: tmp_path / f"{k}.parquet" for k in ("props", "prof", "blosum", "structs", "probes")}
    inputs = {
        "model": tmp_path / "model",
        "tokens": tmp_path / "tokens.parquet",
        "proteins": tmp_path / "proteins.parquet",
        "annotations": tmp_path / "ann.parquet",
        "device": "cpu",
        "seed": cfg["seed"],
    }
    attention(
        **inputs,
        out_properties=out["props"],
        out_profiles=out["prof"],
        out_blosum=out["blosum"],
        out_structures=out["structs"],
        attention=cfg["attention"],
    )
    test = chains[chains["split"] == "test"]
    structs = pd.read_parquet(out["structs"])
    assert len(structs) == len(test) and structs["used"].all() and (structs["identity"] == 1.0).all()
    props = pd.read_parquet(out["props"])
    contact = props[props["property"] == "contact"]
    assert len(contact) == 2 * 4
    n = test["n_ca"].to_numpy()
    density = (2 * test["n_ca_contacts_sep6_8A"]).sum() / ((n - 6) * (n - 5)).sum()
    assert contact["background"].iloc[0] == pytest.approx(density)
    probe_stage(**inputs, out_probes=out["probes"], attention=cfg["attention"])
    probes = pd.read_parquet(out["probes"])
    assert probes["probe"].unique().tolist() == ["contact"] and probes["layer"].tolist() == [0, 1, 2]
    assert (probes["n_test_proteins"] == len(test)).all() and (probes["n_train_proteins"] == 8).all()
    assert (probes["n_test_positive"] == test["n_ca_contacts_sep6_8A"].sum()).all()
    assert probes["precision"].between(0, 1).all() and probes["auprc"].between(0, 1).all()


def test_composition_null_separates_the_site_from_its_amino_acid():
    """Every annotated residue is a W among four W's: a head on the annotated W attends beyond
    its amino acid; a head on any W is enriched for the annotation only through the W."""
    rng = np.random.default_rng(4)
    counts = PropertyCounts(1, 2, ["active_site"], theta=0.3, draws=199, seed=0, composition_columns=1)
    for p in range(40):
        n = 40
        seq = np.array(list("".join(rng.choice(list("ACDEFGHIKLMNPQRSTVY"), n))))
        ws = rng.choice(n, 4, replace=False)
        seq[ws] = "W"
        mask = np.zeros(n, bool)
        mask[ws[0]] = True
        att = np.full((1, 2, n, n), 0.1 / n, dtype=np.float32)
        att[0, 0, :, ws[0]] += 0.9
        att[0, 1, :, rng.choice(ws)] += 0.9
        counts.add(
            f"P{p}", att, mask[:, None].astype(float), residues=np.frombuffer("".join(seq).encode(), np.uint8)
        )
    t = counts.table(min_pairs=100).set_index("head")
    assert t.loc[0, "significant"] and t.loc[0, "significant_composition"]
    assert t.loc[1, "significant"] and not t.loc[1, "significant_composition"]
    assert t.loc[1, "p_composition"] > 0.05


def test_diagonal_shift_counts_equal_rolled_maps():
    from plmxai.attention.analysis import diagonal_shift_counts

    rng = np.random.default_rng(6)
    n = 37
    high = rng.random((5, n, n)) > 0.8
    mat = (rng.random((n, n)) > 0.7).astype(np.float32)
    shifts = np.array([0, 1, 5, 36, 17])
    fast = diagonal_shift_counts(high, [mat, 1 - mat], shifts)
    for m, f in zip([mat, 1 - mat], fast):
        slow = np.array([[(h * np.roll(m, (s, s), (0, 1))).sum() for s in shifts] for h in high])
        np.testing.assert_array_equal(f, slow)


@pytest.mark.realdata
def test_mmcif_and_pdb_give_the_same_chain(shared_data, tmp_path):
    import biotite.structure.io as strucio
    import biotite.structure.io.pdbx as pdbx

    from plmxai.data.structures import read_chains, structure_files

    src = shared_data / "structures" / "pdb" / "1AVX_l_b_COMPLEX.pdb"
    cif = pdbx.CIFFile()
    pdbx.set_structure(cif, strucio.load_structure(str(src)))
    cif.write(str(tmp_path / "Q12345.cif"))
    a, b = read_chains(src), read_chains(tmp_path / "Q12345.cif")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].sequence == b[k].sequence
        np.testing.assert_allclose(a[k].ca, b[k].ca, atol=1e-3)
    (tmp_path / "AF-P99999-F1-model_v4.pdb").write_text(src.read_text())
    (tmp_path / "notes.txt").write_text("not a structure")
    files = structure_files(tmp_path)
    assert files["accession"].tolist() == ["P99999", "Q12345"]
    with pytest.raises(ValueError, match="cannot read structure"):
        read_chains(tmp_path / "notes.txt")


def test_structure_mapping_table_errors_name_the_line(tmp_path):
    from plmxai.data.structures import structure_files

    (tmp_path / "a.pdb").write_text("END\n")
    (tmp_path / "map.tsv").write_text("accession\tfile\tchain\nP1\ta.pdb\tA\nP2\tmissing.cif\t\n")
    with pytest.raises(FileNotFoundError, match=r"map.tsv, line 3: structure file 'missing.cif'"):
        structure_files(tmp_path, tmp_path / "map.tsv")
    (tmp_path / "map.tsv").write_text("accession\tfile\tchain\nP1\ta.pdb\tA\nP2\ta.pdb\t\n")
    files = structure_files(tmp_path, tmp_path / "map.tsv")
    assert files["chain"].iloc[0] == "A" and pd.isna(files["chain"].iloc[1])
    (tmp_path / "bad.tsv").write_text("id\tpath\n")
    with pytest.raises(ValueError, match="missing column"):
        structure_files(tmp_path, tmp_path / "bad.tsv")
