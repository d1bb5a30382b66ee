"""Answer forcing (forcing.py, the engine's forcing rows, the hf backend and the session's primary verdict).

The log-probs and greedy continuations are checked against a direct ``model(...)`` call and against
transformers' own ``generate()`` on the same continuation, on a tiny random model loaded through
``from_pretrained``."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from test_hf_backend import CountingForward, run_some, session_for

from pytest_skillbench import forcing
from pytest_skillbench.bench.tasks import Task
from pytest_skillbench.episodes import Episode, Verdict
from pytest_skillbench.judges import deterministic
from pytest_skillbench.prompts import messages
from pytest_skillbench.report.summary import build_report
from pytest_skillbench.report.terminal import render
from pytest_skillbench.students.engine import ForceSpec, greedy_generate


def _task(qt="YES_NO", answer="yes", question="Is it? Answer yes or no.", passage="A passage.", **kw) -> Task:
    return Task(task_uid="0000-0000-0000-0001", skill="modus-ponens", query_type=qt, title="t", passage=passage,
                question=question, answer=answer, must_identify=("x",), **kw)


# -- pure rules ---------------------------------------------------------------------------------------
def test_targets_per_query_type():
    assert forcing.target_for(_task()) == forcing.ForceTarget("options", ("yes", "no"))
    assert forcing.target_for(_task("SINGLE_WORD", "Quist", "Who? Answer with one word.")).method == "greedy"
    assert forcing.target_for(_task("FREE_FORM", "the premise", "What is assumed?")) is None
    choice = _task("RANKING", "B", "Which is stronger, Argument A, Argument B or Argument C? Answer with the letter.")
    assert forcing.target_for(choice) == forcing.ForceTarget("options", ("A", "B", "C"))
    order = _task("RANKING", "Pell, Okafor, Ruiz", "Order them. Answer with the names separated by commas.")
    assert forcing.target_for(order).method == "greedy"
    # a gold that is not among the labels found: greedy, never a scored guess over the wrong options
    assert forcing.target_for(_task("RANKING", "E2", "Pick (A) or (B).")).method == "greedy"


def test_open_think_block_is_closed_before_the_answer():
    assert forcing.suffix_for("reasoning") == "\nANSWER:"
    assert forcing.suffix_for("<think>still going") == "\n</think>\nANSWER:"
    assert forcing.suffix_for("<think>done</think> so yes") == "\nANSWER:"


def test_options_result_pools_variants_by_logsumexp():
    res = forcing.options_result(("yes", "no"), [[math.log(0.2), math.log(0.1)], [math.log(0.25)]])
    assert res["answer"] == "yes"
    assert res["logprobs"]["yes"] == pytest.approx(math.log(0.3))
    assert res["margin"] == pytest.approx(math.log(0.3) - math.log(0.25))


def test_strict_answer_is_never_overridden():
    task = _task(answer="yes")
    strict = deterministic.judge(task, "so...\nANSWER: no")
    assert strict.status == "failed"
    v = forcing.combine(task, strict, {"method": "options", "answer": "yes", "logprobs": {}, "margin": 1.0})
    assert v.status == "failed" and v.scoring == "strict" and v.extracted == "no"
    assert v.extra["forced"]["status"] == "passed"  # kept beside it for the agreement check


def test_unscored_strict_verdict_is_replaced_by_the_forced_one_and_kept():
    task = _task(answer="no")
    strict = deterministic.judge(task, "I think the passage does not allow it.")
    assert strict.reason == "no_answer_line"
    v = forcing.combine(task, strict, {"method": "options", "answer": "no", "logprobs": {"yes": -2.0, "no": -1.0},
                                       "margin": 1.0})
    assert (v.status, v.scoring, v.extracted, v.format_ok) == ("passed", "forced", "no", False)
    assert Verdict.from_dict(v.extra["strict"]).reason == "no_answer_line"
    assert forcing.strict_of(v).status == "unscored"
    # round trip through the episode file keeps both readings
    again = Verdict.from_dict(json.loads(json.dumps(v.to_dict())))
    assert again.scoring == "forced" and again.extra == v.extra


def test_free_form_is_never_forced():
    task = _task("FREE_FORM", "the missing premise", "What is assumed?")
    strict = deterministic.judge(task, "no answer line")
    assert forcing.combine(task, strict, {"method": "greedy", "answer": "the missing premise"}) is strict


def test_truncated_response_with_unusable_answer_is_forced():
    task = _task(answer="yes")
    strict = deterministic.judge(task, "ANSWER: maybe")
    assert strict.reason == "answer_not_in_expected_form"
    v = forcing.combine(task, strict, {"method": "options", "answer": "yes", "margin": 0.1}, truncated=True)
    assert v.scoring == "forced" and v.extra["forced"]["truncated"] is True


def test_strict_only_verdicts_serialise_as_before():
    v = Verdict(status="passed", expected="yes", extracted="yes", format_ok=True)
    assert "scoring" not in v.to_dict() and "extra" not in v.to_dict()


# -- the report ---------------------------------------------------------------------------------------
def _ep(uid, cond, status, scoring="strict", forced_status=None, strict_status=None):
    extra = {}
    if forced_status:
        extra["forced"] = {"method": "options", "answer": "yes", "status": forced_status,
                           "extracted": "yes" if forced_status == "passed" else "no"}
    if scoring == "forced":
        extra["strict"] = Verdict(status=strict_status or "unscored", reason="no_answer_line").to_dict()
    v = Verdict(status=status, expected="yes", extracted="yes" if status == "passed" else "no",
                format_ok=scoring == "strict", scoring=scoring, extra=extra)
    return Episode(student="s", condition=cond, task_uid=uid, skill="modus-ponens", query_type="YES_NO",
                   response="r", verdict=v)


def _forcing_eps() -> list[Episode]:
    eps = []
    # 10 tasks; baseline: 4 strict (3 passed), 6 forced (2 passed); curated: 5 strict (5 passed), 5 forced (4 passed)
    for i in range(10):
        uid = f"u{i:02d}"
        if i < 4:
            eps.append(_ep(uid, "baseline", "passed" if i < 3 else "failed",
                           forced_status="passed" if i < 2 else "failed"))
        else:
            eps.append(_ep(uid, "baseline", "passed" if i < 6 else "failed", scoring="forced",
                           forced_status="passed" if i < 6 else "failed"))
        if i < 5:
            eps.append(_ep(uid, "curated", "passed", forced_status="passed"))
        else:
            eps.append(_ep(uid, "curated", "passed" if i < 9 else "failed", scoring="forced",
                           forced_status="passed" if i < 9 else "failed"))
    return eps


def test_report_gives_strict_forced_share_gap_and_agreement():
    rep = build_report(_forcing_eps(), {}, resamples=200)["students"]["s"]
    b, c = rep["conditions"]["baseline"], rep["conditions"]["curated"]
    assert b["pass_rate"] == pytest.approx(5 / 10) and b["strict"]["pass_rate"] == pytest.approx(3 / 4)
    assert b["strict"]["scored"] == 4 and b["forced_share"] == pytest.approx(0.6)
    assert b["format_gap"] == pytest.approx(0.5 - 0.75)
    assert c["pass_rate"] == pytest.approx(0.9) and c["strict"]["pass_rate"] == 1.0
    # agreement: 9 strictly scored episodes with a forced reading; baseline u02 passed strictly, forced failed
    ag = rep["forced_vs_strict_agreement"]
    assert ag["n"] == 9 and ag["share"] == pytest.approx(8 / 9)
    assert ag["by_method"] == {"options": {"share": pytest.approx(8 / 9), "n": 9}}
    assert rep["delta"]["n_pairs"] == 10 and rep["delta"]["strict"]["n_pairs"] == 4
    assert rep["delta"]["value"] == pytest.approx(0.9 - 0.5)


def test_agreement_by_method_and_the_low_agreement_note():
    """Per method and overall, from worked counts; the terminal notes a low figure only on enough episodes."""
    eps = []
    for i in range(24):  # options: 12 strict answers, 6 forced readings agree; greedy: 12, 11 agree
        method = "options" if i < 12 else "greedy"
        agree = i < 6 or i >= 13
        ep = _ep(f"u{i:02d}", "baseline", "passed", forced_status="passed" if agree else "failed")
        ep.verdict.extra["forced"]["method"] = method
        eps.append(ep)
    ag = forcing.agreement(eps)
    assert ag["n"] == 24 and ag["share"] == pytest.approx(17 / 24)
    assert ag["by_method"]["options"] == {"share": pytest.approx(0.5), "n": 12}
    assert ag["by_method"]["greedy"] == {"share": pytest.approx(11 / 12), "n": 12}
    text = "\n".join(render(build_report(eps, {}, resamples=50)))
    assert "forced vs strict agreement s: 70.8% of 24 episode(s)" in text and "options 50.0% of 12" in text
    assert "note: s: the forced answer differs from the model's own ANSWER line in 29%" in text
    assert forcing.agreement_is_low(ag) and not forcing.agreement_is_low({**ag, "n": 19})
    assert not forcing.agreement_is_low({**ag, "share": 0.8}) and not forcing.agreement_is_low(None)


def test_report_without_forcing_has_no_forcing_keys():
    eps = [_ep("u1", "baseline", "passed"), _ep("u1", "curated", "failed")]
    rep = build_report(eps, {}, resamples=50)["students"]["s"]
    assert "strict" not in rep["conditions"]["baseline"] and "forced_vs_strict_agreement" not in rep
    assert "strict" not in rep["delta"]


# -- the engine on a tiny model (conftest's `loaded`: a tiny Llama whose outputs vary by prompt) -----------


@pytest.fixture(scope="module")
def prompts(loaded, bundled_bench):
    tok, _ = loaded
    tasks = bundled_bench.split("holdout")[:5]
    texts = [tok.apply_chat_template(messages(t, c, bundled_bench.catalog), add_generation_prompt=True,
                                     tokenize=False) for t in tasks for c in ("baseline", "curated")]
    return tok(texts, add_special_tokens=False)["input_ids"]


def _flat(groups):
    return [x for g in groups for x in g]


def _eos(loaded, prompts, model):
    """End tokens chosen from the model's own outputs so rows stop at different steps (some never stop)."""
    tok, _ = loaded
    free, _ = greedy_generate(model, prompts, max_new_tokens=8, eos_ids={tok.eos_token_id}, pad_id=tok.pad_token_id,
                              device="cpu", batch_size=16, repetition_penalty=1.3)
    return {f[i % 5 + 2] for i, f in enumerate(free) if i % 3}


def test_option_logprobs_equal_a_direct_model_call(loaded, prompts):
    import torch

    tok, model = loaded
    eos = _eos(loaded, prompts, model)
    feed = tok.encode("\nANSWER:", add_special_tokens=False)
    groups = forcing.option_token_groups(tok, ("yes", "no"))
    assert groups and all(groups)
    plain, _ = greedy_generate(model, prompts, max_new_tokens=8, eos_ids=eos, pad_id=tok.pad_token_id,
                               device="cpu", batch_size=3, repetition_penalty=1.3)
    got: dict[int, dict] = {}
    gen, stats = greedy_generate(model, prompts, max_new_tokens=8, eos_ids=eos, pad_id=tok.pad_token_id,
                                 device="cpu", batch_size=3, repetition_penalty=1.3,
                                 force=lambda i, ids: ForceSpec(feed, groups),
                                 on_forced=lambda i, r: got.__setitem__(i, r))
    assert gen == plain  # forcing rows never change any answer
    assert len({len(g) for g in gen}) >= 2 and sorted(got) == list(range(len(prompts)))
    assert stats.forced_rows == len(prompts)
    for i, p in enumerate(prompts):
        ids = torch.tensor([p + gen[i] + feed])
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)
        want = [[float(lp[t]) for t in g] for g in groups]
        assert _flat(got[i]["option_logprobs"]) == pytest.approx(_flat(want), abs=1e-4)


@pytest.mark.slow
def test_greedy_forcing_equals_generate_on_the_same_continuation(loaded, prompts):
    """Token for token generate(min_new_tokens=1) on prompt + response + suffix, also where the row's own first
    forced token is an end token (second round): the engine then takes the next best token, as generate does."""
    import torch

    tok, model = loaded
    eos = _eos(loaded, prompts, model)
    feed = tok.encode("\nANSWER:", add_special_tokens=False)
    firsts: set[int] = set()
    for rnd in range(2):
        ends = eos | firsts
        got: dict[int, dict] = {}
        gen, _ = greedy_generate(model, prompts, max_new_tokens=8, eos_ids=ends, pad_id=tok.pad_token_id,
                                 device="cpu", batch_size=4, repetition_penalty=1.3,
                                 force=lambda i, ids: ForceSpec(feed, None),
                                 on_forced=lambda i, r, got=got: got.__setitem__(i, r), force_max_tokens=6)
        for i, p in enumerate(prompts):
            ids = torch.tensor([p + gen[i] + feed])
            with torch.no_grad():
                o = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                   max_new_tokens=6, min_new_tokens=1, repetition_penalty=1.3,
                                   eos_token_id=sorted(ends), pad_token_id=tok.pad_token_id, temperature=None,
                                   top_p=None, top_k=None)
            new = o[0, ids.shape[1]:].tolist()
            stop = [k for k, t in enumerate(new) if t in ends]
            assert got[i]["tokens"] == (new[:stop[0]] if stop else new)
            assert got[i]["tokens"]  # never an empty answer
        firsts = {t["tokens"][0] for t in got.values()}


def test_forcing_a_stored_response_matches_forcing_it_inline(loaded, prompts):
    tok, model = loaded
    feed = tok.encode("\nANSWER:", add_special_tokens=False)
    groups = forcing.option_token_groups(tok, ("yes", "no"))
    inline: dict[int, dict] = {}
    gen, _ = greedy_generate(model, prompts, max_new_tokens=5, eos_ids={tok.eos_token_id}, pad_id=tok.pad_token_id,
                             device="cpu", batch_size=4, repetition_penalty=1.0,
                             force=lambda i, ids: ForceSpec(feed, groups), on_forced=lambda i, r: inline.__setitem__(i, r))
    later: dict[int, dict] = {}
    greedy_generate(model, [p + g for p, g in zip(prompts, gen)], max_new_tokens=0, eos_ids={tok.eos_token_id},
                    pad_id=tok.pad_token_id, device="cpu", batch_size=4, force_only=True,
                    force=lambda i, ids: ForceSpec(feed, groups), on_forced=lambda i, r: later.__setitem__(i, r))
    for i in range(len(prompts)):
        assert _flat(later[i]["option_logprobs"]) == pytest.approx(_flat(inline[i]["option_logprobs"]), abs=1e-4)


# -- the session ---------------------------------------------------------------------------------------
def test_hf_student_is_forced_and_a_second_run_does_no_forward_pass(tiny_model_dir, tmp_path):
    cache = tmp_path / "cache"
    sb = session_for([str(tiny_model_dir)], cache, tmp_path)
    assert sb.forcing == {tiny_model_dir.name: True}
    eps = run_some(sb, 10)
    forced = [e for e in eps if e.verdict.scoring == "forced"]
    # the tiny random model never writes an ANSWER line: every non-FREE_FORM episode is scored by forcing
    assert forced and all(e.query_type != "FREE_FORM" for e in forced)
    assert all(e.verdict.scored for e in forced)
    assert all(forcing.strict_of(e.verdict).status == "unscored" for e in forced)
    assert all(e.verdict.status == "unscored" for e in eps if e.query_type == "FREE_FORM")
    for e in forced:
        f = e.verdict.extra["forced"]
        if e.query_type == "YES_NO":
            assert f["method"] == "options" and set(f["logprobs"]) == {"yes", "no"}
            assert f["answer"] == max(f["logprobs"], key=f["logprobs"].get)
    sb2 = session_for([str(tiny_model_dir)], cache, tmp_path)
    b2 = sb2.backend(tiny_model_dir.name)
    counter = CountingForward(sb2.pool.get(b2.base_path, None, b2.dtype, "cpu")["model"])
    eps2 = run_some(sb2, 10)
    assert counter.calls == 0  # generation and forcing both from the cache
    assert [e.verdict.to_dict() for e in eps2] == [e.verdict.to_dict() for e in eps]


def test_cached_generation_is_forced_in_a_separate_pass(tiny_model_dir, tmp_path):
    """A run under --scoring strict fills the generation cache only; the next run forces from it."""
    cache = tmp_path / "cache"
    strict = run_some(session_for([str(tiny_model_dir)], cache, tmp_path, scoring="strict"), 6)
    assert all(e.verdict.scoring == "strict" and "forced" not in e.verdict.extra for e in strict)
    sb = session_for([str(tiny_model_dir)], cache, tmp_path)
    eps = run_some(sb, 6)
    assert [e.response for e in eps] == [e.response for e in strict]
    assert any(e.verdict.scoring == "forced" for e in eps)


def test_forcing_off_and_llm_judges_never_force(tiny_model_dir, tmp_path):
    sb = session_for([str(tiny_model_dir)], tmp_path / "c", tmp_path, answer_forcing="off")
    assert sb.forcing == {tiny_model_dir.name: False}


def test_forcing_on_for_a_replay_student_is_one_clear_error(tmp_path, replay_file):
    from pytest_skillbench.errors import SkillbenchError

    with pytest.raises(SkillbenchError, match="student 'toy'.*cannot have its answers forced"):
        session_for([f"replay:{replay_file}"], tmp_path / "c", tmp_path, answer_forcing="on")
    sb = session_for([f"replay:{replay_file}"], tmp_path / "c", tmp_path)  # auto: replay is not forced
    assert sb.forcing == {"toy": False}


def test_replay_report_is_identical_under_scoring_strict(pytester, replay_file):
    outs = []
    for extra in ([], ["--scoring", "strict"]):
        out = pytester.path / f"r{len(outs)}.json"
        pytester.runpytest_subprocess("-p", "no:randomly", "--student", f"replay:{replay_file}",
                                      "--skillbench-json", str(out), "-q", *extra)
        rep = json.loads(out.read_text())
        rep.pop("run")
        outs.append(rep)
    assert outs[0] == outs[1]
    assert "strict" not in outs[0]["students"]["toy"]["conditions"]["baseline"]


def test_forced_answer_from_a_label_question_replaces_only_unscored(bundled_bench):
    task = replace(_task("RANKING", "C", "Which plan holds up: Plan A, Plan B or Plan C? Answer with the letter."))
    strict = deterministic.judge(task, "Plan C seems best overall.")
    v = forcing.combine(task, strict, {"method": "options", "answer": "C", "logprobs": {}, "margin": 0.3})
    assert v.status == "passed" and v.scoring == "forced" and v.extracted == "C"


def test_gates_address_strict_and_forced_fields():
    from pytest_skillbench.gates import _cond_metrics, _delta_metrics, parse_gate

    for text, metric in (("curated.strict.pass_rate >= 90%", "curated.strict.pass_rate"),
                         ("curated.forced_share <= 0.5", "curated.forced_share"),
                         ("baseline.format_gap > -0.3", "baseline.format_gap"),
                         ("delta.strict.ci95.low > 0", "delta.strict.ci95.low")):
        assert parse_gate(text).metric == metric
    eps = _forcing_eps()
    m = _cond_metrics([e for e in eps if e.condition == "baseline"])
    assert m["pass_rate"] == pytest.approx(0.5) and m["strict.pass_rate"] == pytest.approx(0.75)
    assert m["strict.scored"] == 4 and m["forced_share"] == pytest.approx(0.6)
    assert m["format_gap"] == pytest.approx(-0.25)
    d = _delta_metrics(eps, 1, 200)
    assert (d["n_pairs"], d["strict.n_pairs"]) == (10, 4) and d["strict.value"] == pytest.approx(1.0 - 0.75)


def test_deterministic_rejudge_keeps_the_stored_forced_reading():
    from pytest_skillbench.judges.runner import JudgeRunner
    from pytest_skillbench.rejudge import rejudge_episodes

    task = _task(answer="no")
    strict = deterministic.judge(task, "I doubt it.")
    v = forcing.combine(task, strict, {"method": "options", "answer": "no", "logprobs": {"yes": -3.0, "no": -1.0},
                                       "margin": 2.0})
    ep = Episode(student="s", condition="baseline", task_uid=task.task_uid, skill=task.skill, query_type="YES_NO",
                 response="I doubt it.", verdict=v)
    rejudge_episodes([ep], {task.task_uid: task}, JudgeRunner("deterministic"))
    assert ep.verdict.status == "passed" and ep.verdict.scoring == "forced"  # no model needed, nothing lost


def test_greedy_answer_is_the_first_non_empty_line(loaded, prompts):
    """A line break right after ``ANSWER:`` does not end a greedy forced answer; one after some text does."""
    tok, model = loaded
    feed = tok.encode("\nANSWER:", add_special_tokens=False)

    def run(**kw):
        got: dict[int, dict] = {}
        greedy_generate(model, prompts, max_new_tokens=3, eos_ids={tok.eos_token_id}, pad_id=tok.pad_token_id,
                        device="cpu", batch_size=4, force=lambda i, ids: ForceSpec(feed, None),
                        on_forced=lambda i, r: got.__setitem__(i, r["tokens"]), force_max_tokens=6, **kw)
        return got

    free = run()
    assert all(len(t) == 6 for t in free.values())
    # pretend each row's first token is a bare line break and its third a line break after text
    stop = {t[0] for t in free.values()} | {t[2] for t in free.values()}
    blank = {t[0] for t in free.values()}
    got = run(force_stop_ids=stop, force_blank_ids=blank)
    for i, t in free.items():
        k = next((j + 1 for j, x in enumerate(t) if x in stop and any(y not in blank for y in t[:j + 1])), len(t))
        assert got[i] == t[:k]
    assert any(len(g) > 1 for g in got.values())  # some rows went past a leading line break
