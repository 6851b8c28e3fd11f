"""Learning from analysts: verdicts and partner indicators re-weight the account model, checked on held-out
campaigns.

The population: 300 ordinary accounts; four *attack* campaigns that harvest (long single-turn answers, a
moderate share of reasoning prompts) and four *benign* cohorts that an analyst dismissed — users of tools
whose system prompt asks for step-by-step reasoning (high intent and reasoning shares, multi-turn, short
answers). With the configured weights the cohorts look *more* suspicious than the campaigns (intent weighs
2.6); the verdicts say harvesting shape separates and intent does not.
"""

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from distillguard.scan.config import AccountModelConfig, LearningConfig, ScanConfig
from distillguard.scoring.learn import (
    UPDATE_SCHEMA,
    Labels,
    collect_labels,
    learn_account_model,
    refit_account_model,
)
from distillguard.scoring.suspicion import COMPONENTS, account_suspicion
from distillguard.store import Store

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _population(seed: int = 0, n_camp: int = 4, n_cohort: int = 4, size: int = 10):
    rng = np.random.default_rng(seed)
    rows = []

    def add(aid, intent, reasoning, single, max_tok):
        rows.append(dict(account_id=aid, n_exchanges=200.0, share_cot_elicitation=float(np.clip(intent, 0, 1)),
                         reasoning_share=float(np.clip(reasoning, 0, 1)), single_turn_share=float(np.clip(single, 0, 1)),
                         mean_max_tokens=float(max_tok), top_template_share=0.5, top_capability_share=0.4,
                         mean_rpd=float(rng.uniform(5, 50))))

    for i in range(300):
        add(f"user{i}", rng.uniform(0, 0.2), rng.uniform(0, 0.3), rng.uniform(0.2, 0.7), rng.uniform(200, 2000))
    camps, cohorts = {}, {}
    for c in range(n_camp):
        for j in range(size):
            a = f"camp{c}-{j}"
            camps[a] = f"c{c}"
            add(a, rng.uniform(0.15, 0.45), rng.uniform(0.2, 0.5), rng.uniform(0.9, 1.0), rng.uniform(6000, 8000))
    for c in range(n_cohort):
        for j in range(size):
            a = f"cohort{c}-{j}"
            cohorts[a] = f"b{c}"
            add(a, rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95), rng.uniform(0.1, 0.4), rng.uniform(300, 1500))
    return pa.Table.from_pylist(rows), camps, cohorts


def _labels(camps: dict, cohorts: dict, flip: float = 0.0, seed: int = 0) -> Labels:
    rng = np.random.default_rng(seed)
    lab = Labels()
    for a, g in list(camps.items()) + list(cohorts.items()):
        y = 1.0 if a in camps else 0.0
        if rng.random() < flip:
            y = 1.0 - y
        lab.account_id.append(a)
        lab.y.append(y)
        lab.weight.append(1.0)
        lab.group.append(g)
        lab.source.append("analyst")
    return lab


def _susp(feats: pa.Table, model) -> dict[str, float]:
    t = account_suspicion(feats, model=model)
    return dict(zip(t["account_id"].to_pylist(), t["suspicion"].to_pylist(), strict=True))


def test_verdicts_reweight_towards_what_separates_and_stay_bounded():
    feats, camps, cohorts = _population()
    model, learning = AccountModelConfig(), LearningConfig()
    up = refit_account_model(feats, _labels(camps, cohorts), model, learning)
    assert up.applied, up.why
    assert up.n_attack == 40 and up.n_benign == 40 and up.n_campaigns == 8
    assert up.heldout_after < up.heldout_before * (1 - learning.min_improvement)
    assert up.after["intent"] < up.before["intent"]  # the dismissed cohorts are high on intent
    assert up.after["harvest_shape"] > up.before["harvest_shape"]  # the confirmed campaigns harvest
    for k in COMPONENTS:
        assert abs(up.after[k] - up.before[k]) <= learning.max_weight_change + 1e-9
        assert up.after[k] >= 0
    old = _susp(feats, model)
    new = _susp(feats, model.model_copy(update={"weights": up.after, "bias": up.bias_after}))
    coh = [a for a in cohorts]
    cmp = [a for a in camps]
    # configured weights rank the cohorts above the campaigns; the learned ones the other way round
    assert np.mean([old[a] for a in coh]) > np.mean([old[a] for a in cmp])
    assert np.mean([new[a] for a in cmp]) > np.mean([new[a] for a in coh])
    # ordinary users do not become suspicious because the labelled sample is half attacks (the bias keeps
    # the store's mean log-odds)
    users = [a for a in old if a.startswith("user")]
    assert np.mean([new[a] for a in users]) <= np.mean([old[a] for a in users]) + 0.05


def test_tighter_bound_limits_every_change():
    feats, camps, cohorts = _population()
    up = refit_account_model(feats, _labels(camps, cohorts), AccountModelConfig(),
                             LearningConfig(max_weight_change=0.3))
    assert up.applied
    assert max(abs(up.after[k] - up.before[k]) for k in COMPONENTS) <= 0.3 + 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_unrelated_to_the_traffic_are_refused(seed):
    """Verdicts that do not follow the evidence (each account's label a coin flip) must not move the model:
    the held-out campaigns do not get better."""
    feats, camps, cohorts = _population(seed)
    lab = _labels(camps, cohorts)
    rng = np.random.default_rng(100 + seed)
    lab.y = [float(v) for v in rng.integers(0, 2, len(lab.y))]
    up = refit_account_model(feats, lab, AccountModelConfig(), LearningConfig())
    assert not up.applied
    assert "held-out" in up.why
    assert up.heldout_after is not None and up.heldout_before is not None


def test_one_class_or_one_campaign_is_refused():
    feats, camps, cohorts = _population()
    only_attacks = _labels(camps, {})
    up = refit_account_model(feats, only_attacks, AccountModelConfig(), LearningConfig())
    assert not up.applied and "one class" in up.why
    one_each = _labels({a: g for a, g in camps.items() if g == "c0"}, {a: g for a, g in cohorts.items() if g == "b0"})
    up = refit_account_model(feats, one_each, AccountModelConfig(), LearningConfig())
    assert not up.applied and "held-out check" in up.why


def test_labels_from_console_decisions_and_partner_indicators(tmp_path):
    st = Store(tmp_path / "s", create=True)
    st.append_table("analyst_labels", pa.Table.from_pylist([
        dict(account_id="a1", label="attack", campaign_id="c1", at=AT, actor="ann", reason="x"),
        dict(account_id="a2", label="benign", campaign_id="c2", at=AT, actor="ann", reason="x"),
        dict(account_id="a3", label="attack", campaign_id=None, at=AT, actor="ann", reason="x")]))
    st.write_table("campaign_decisions", pa.Table.from_pylist([
        dict(campaign_id="c3", status="dismissed", action="allow", at=AT, actor="bob", reason="lab"),
        dict(campaign_id="c4", status="confirmed", action="block", at=AT, actor="bob", reason="hydra")]))
    st.write_table("campaign_members", pa.table({"campaign_id": ["c3", "c3", "c4", "c5"],
                                                 "account_id": ["b1", "a1", "b2", "b3"]}))
    st.write_table("intel_boost", pa.Table.from_pylist([
        dict(account_id="p1", boost=0.8, sources=["partner-x"]), dict(account_id="a2", boost=1.0, sources=["x"])]))
    lab = collect_labels(st, intel_weight=0.5)
    got = {a: (y, w, g, s) for a, y, w, g, s in zip(lab.account_id, lab.y, lab.weight, lab.group, lab.source,
                                                     strict=True)}
    assert got["a1"] == (1.0, 1.0, "c1", "analyst")  # the analyst's own label wins over a campaign verdict
    assert got["a2"][0] == 0.0 and got["a2"][3] == "analyst"  # ... and over a partner indicator
    assert got["a3"][2] == "account:a3"
    assert got["b1"] == (0.0, 1.0, "c3", "decision")
    assert got["b2"] == (1.0, 1.0, "c4", "decision")
    assert "b3" not in got  # no verdict on c5
    assert got["p1"][0] == 1.0 and got["p1"][1] == pytest.approx(0.4) and got["p1"][3] == "intel"
    assert collect_labels(st, intel_weight=0.0).account_id.count("p1") == 0


def test_learn_account_model_off_and_without_labels(tmp_path):
    st = Store(tmp_path / "s", create=True)
    model = AccountModelConfig()
    called = []
    m, up = learn_account_model(st, lambda: called.append(1), model, LearningConfig())
    assert m is model and not up.applied and up.why == "no labels" and not called  # no features computed
    assert up.bias_after == up.bias_before == model.bias
    m, up = learn_account_model(st, lambda: None, model, LearningConfig(enabled=False))
    assert m is model and "off" in up.why
    assert up.table(AT).schema == UPDATE_SCHEMA and up.table(AT).num_rows == len(COMPONENTS) + 1  # and the bias


def test_learning_config_is_validated():
    with pytest.raises(ValueError):
        ScanConfig.model_validate({"scoring": {"learning": {"max_weight_change": -1}}})
    with pytest.raises(ValueError):
        ScanConfig.model_validate({"scoring": {"learning": {"unknown": 1}}})


def test_labelled_accounts_are_ranked_against_the_whole_store(monkeypatch):
    """Percentile components of a labelled account must be what a scan gives it (ranked among every account of
    the store), not its rank among the few accounts an analyst happened to label."""
    import distillguard.scoring.learn as learn
    from distillguard.scoring.suspicion import components

    feats, camps, cohorts = _population()
    model, seen = AccountModelConfig(), []
    real_fit = learn._fit

    def spy(X, *a, **k):
        seen.append(X)
        return real_fit(X, *a, **k)

    monkeypatch.setattr(learn, "_fit", spy)
    lab = _labels(camps, cohorts)
    refit_account_model(feats, lab, model, LearningConfig())
    whole = components(feats, ("sig_task_dataset",), model.prior_exchanges, model.rank_prior_exchanges)
    row = {a: i for i, a in enumerate(feats["account_id"].to_pylist())}
    want = np.stack([whole[c] for c in COMPONENTS], axis=1)[[row[a] for a in lab.account_id]]
    np.testing.assert_allclose(seen[-1], want)
