"""``skillbench validate``: load a bench collecting every defect, count what is there, and lint it.

The lint measures the construction problems of issue 17 (docs/bench.md, "Lint"): a task's deciding text
copied from its own skill card, narrator sentences that settle the question, holdout/train overlap and
near-duplicates, yes-shares by difficulty and category, RANKING list lengths, guessing floors, "which
person" SINGLE_WORD questions, long FREE_FORM golds, difficulty against its written basis, rubric phrases
that leak the label, and demos that skip a procedure step or end in a wrong ANSWER line.

Every limit is a module-level constant below. Limits are checked for every bench (bundled v2, bundled-v1,
external); a figure past its limit is a *violation* and the command exits 1, exactly as for a load error.
The bundled v2 is written to pass all of them; v1 and external benches are expected to show violations,
which is how their problems are reported in numbers.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from itertools import combinations, pairwise
from pathlib import Path

import numpy as np

from .bench import BUNDLED_BENCHES, bench_version, bundled_dir, load_bench, load_catalog
from .bench.catalog import Catalog, Skill
from .bench.demos import Demo, load_demos
from .bench.tasks import Task, difficulty_by_rule
from .episodes import Status
from .errors import SkillbenchError
from .judges.deterministic import judge, normalise

# ---- limits (a figure past one of these is a violation; docs/bench.md explains each) -------------------
CARD_CONTENT_SHARE_MAX = 0.6     # share of a deciding point's content words found in one piece of its card
CARD_SHARED_NGRAM = 6            # word n-gram length for copied card text
CARD_SHARED_NGRAMS_MAX = 0       # shared 6-grams allowed between a task's deciding text and its card
CARD_OVERLAP_TASKS_MAX = 0       # tasks allowed over either card-overlap limit
GIVEAWAY_TASKS_MAX = 0           # tasks whose passage has a narrator give-away sentence
SPLIT_NGRAM = 8                  # word n-gram length for holdout/train overlap
HOLDOUT_TRAIN_NGRAM_SHARE_MAX = 0.0  # largest share of a holdout passage's 8-grams found in train passages
NEAR_DUPLICATE_SIMILARITY = 0.5  # TF-IDF cosine of two passages at which they count as near-duplicates
HOLDOUT_TRAIN_NEAR_DUPLICATES_MAX = 0
HOLDOUT_NEAR_DUPLICATES_MAX = 0  # near-duplicate pairs within the holdout
YES_SHARE_RANGE = (0.45, 0.55)   # share of "yes" golds among YES_NO tasks, per split x difficulty/category
RANKING_ORDER3_SHARE_MIN = 0.60  # share of RANKING tasks that are orderings of >= 3 items
RANKING_TWO_OPTION_CHOICES_MAX = 0  # A/B choices typed as RANKING
GUESS_FLOOR_MAX = 0.30           # mean chance rate of the RANKING tasks (A/B choices 1/2, orders of n 1/n!)
SINGLE_WORD_TWO_CANDIDATES_MAX = 0  # SINGLE_WORD tasks whose question offers only two candidates
WHICH_PERSON_SHARE_MAX = 0.25    # share of SINGLE_WORD tasks whose gold is the person a question asks for
FREE_FORM_GOLD_WORDS_MAX = 8     # words in a FREE_FORM gold
FREE_FORM_VERDICT_GOLDS_MAX = 0  # FREE_FORM golds that begin with Yes/No
DIFFICULTY_MISMATCHES_MAX = 0    # tasks whose difficulty is not the one the rule gives for their basis
DIFFICULTY_BASIS_MISSING_MAX = 0  # tasks without a difficulty_basis
LEAK_PHRASE_MIN_TASKS = 10       # a rubric phrase in this many YES_NO tasks, all with one gold, leaks it
LEAK_PHRASES_MAX = 0
DEMO_DEFECTS_MAX = 0             # demos missing a "Step k", or whose ANSWER line fails its task's gold

LIMITS = {name: value for name, value in dict(globals()).items()
          if name.isupper() and name.endswith(("_MAX", "_MIN", "_RANGE", "_SIMILARITY", "_TASKS"))}

# ---- narrator give-away cues ---------------------------------------------------------------------------
# (name, regex) pairs matched, case-insensitively, against each passage sentence once quoted speech is
# removed, unless a speech verb precedes the cue in the sentence (reported speech: "Ada argues that ..."). Each cue is a way a narrator can
# settle the question for the reader instead of reporting facts: conceding the key premise, closing the
# world, passing judgement, or naming the fallacy/bias/rule itself.
GIVEAWAY_CUES: tuple[tuple[str, str], ...] = (
    ("undisputed", (r"\b(?:did|does|do|has|had) not (?:dispute|contest|deny|challenge)|\bnever (?:disputed|denied)"
                    r"|\bno one (?:disputes|disputed|denies|denied)|\bundisputed\b")),
    ("nothing else", r"\bnothing else\b|\bno other\b"),
    ("no exceptions", r"\bno exceptions?\b|\bwithout exception\b"),
    ("no evidence", r"\bthere (?:is|was|are|were) no (?:evidence|record|sign|reason|indication)\b"),
    ("in fact", r"\bin fact\b|\bin reality\b"),
    ("actually", r"\bactually\b"),
    ("it turned out", r"\bit (?:turned|turns) out\b|\bas it (?:happens|happened|turned out)\b"),
    ("the real reason", r"\bthe (?:real|true|actual) (?:reason|cause|explanation)\b"),
    ("verdict adverb", r"\b(?:correctly|wrongly|mistakenly|incorrectly|rightly|falsely|erroneously)\b"),
    ("regardless", r"\bregardless\b|\bobviously\b"),
    ("names the error", (r"\bfallac(?:y|ies|ious)\b|\bbias(?:ed)?\b|\bad hominem\b|\bstraw ?man\b|\btu quoque\b"
                        r"|\bred herring\b|\bslippery slope\b|\bsunk[- ]cost\b|\bfalse dilemma\b|\bpost hoc\b"
                        r"|\bmodus (?:ponens|tollens)\b|\bcontrapositive\b|\bsyllogism\b|\bbase[- ]rate neglect\b"
                        r"|\bregression to the mean\b|\bequivocat\w*|\bbegs? the question\b"
                        r"|\bcircular (?:reasoning|argument)\b|\bloaded question\b|\bhasty generali[sz]ation\b"
                        r"|\bappeal to (?:authority|emotion)\b|\bnon sequitur\b")),
)
_CUES = tuple((name, re.compile(rx, re.IGNORECASE)) for name, rx in GIVEAWAY_CUES)
_SPEECH = re.compile(r"\b(?:say|says|said|argue|argues|argued|claim|claims|claimed|insist|insists|insisted|tell|"
                     r"tells|told|reply|replies|replied|write|writes|wrote|ask|asks|asked|think|thinks|thought|"
                     r"believe|believes|believed|suggest|suggests|suggested|blame|blames|blamed|answer|answers|"
                     r"answered|object|objects|objected|conclude|concludes|concluded|announce|announces|"
                     r"announced|warn|warns|warned|explain|explains|explained|respond|responds|responded|"
                     r"counter|counters|countered|reason|reasons|reasoned|declare|declares|declared|"
                     r"add|adds|added|note|notes|noted|posts|posted|predicts|predicted|decides|decided|"
                     r"concedes|conceded|admits|admitted|recalls|recalled|remarks|remarked|protests|protested)\b",
                     re.IGNORECASE)
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|(?<!\w)'[^']*'(?!\w)|‘[^’]*’")
_SENTENCE = re.compile(r"(?<=[.!?])[\"”’']?\s+(?=[A-Z\"“‘'])")

# ---- which-person SINGLE_WORD --------------------------------------------------------------------------
_PERSON_ROLES = (
    "person|people|man|woman|men|women|friend|teacher|manager|student|pupil|worker|employee|staff|member|"
    "colleague|relative|cousin|sibling|brother|sister|parent|child|biologist|scientist|doctor|nurse|patient|"
    "pilot|driver|coach|player|athlete|assistant|attendant|traveller|traveler|passenger|witness|suspect|"
    "speaker|candidate|resident|neighbour|neighbor|customer|client|official|officer|judge|lawyer|juror|"
    "engineer|technician|apprentice|volunteer|farmer|chef|cook|baker|reporter|journalist|editor|analyst|"
    "trader|investor|owner|buyer|seller|tenant|landlord|partner|agent|inspector|researcher|professor|"
    "director|councillor|politician|voter|musician|singer|artist|writer|author|critic|mother|father|son|"
    "daughter|boy|girl|twin|runner|swimmer|cyclist|sailor|captain|guard|clerk|shopper|diner|guest|host|"
    "intern|trainee|supervisor|executive|clinician|physician|surgeon|pharmacist|detective|officer|"
    "gardener|mechanic|architect|economist|historian|astronomer|physicist|chemist|mathematician|economist|"
    "accountant|banker|broker|auditor|referee|umpire|fan|viewer|listener|reader|citizen|applicant|tutor|"
    "instructor|lecturer|dean|principal|mayor|senator|minister|founder|partner|rower|climber|hiker|diver")
_WHO_RE = re.compile(rf"\bwho(?:m|se)?\b|\b(?:{_PERSON_ROLES})(?:s|'s|s')?\b", re.IGNORECASE)

_STOP_WORDS = """a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each either else even ever every
few for from further had has have having he her here hers herself him himself his how however i if in into
is it its itself just least less let like may me might more most much must my myself neither no nor not now
of off on once one only or other our ours ourselves out over own per rather same shall she should since so
some such than that the their theirs them themselves then there these they this those though through thus
to too under until up upon us very was we were what when where whether which while who whom whose why will
with within without would yet you your yours yourself yourselves"""
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def content_words(text: str) -> set[str]:
    """Words that carry content: not stop words, longer than two letters, a plural ``s`` dropped."""
    out = set()
    for w in words(text):
        if w in _STOP or len(w) <= 2:
            continue
        out.add(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    ws = words(text)
    return {tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)}


# ---- per-task figures ------------------------------------------------------------------------------------
def deciding_units(task: Task) -> list[str]:
    """The text that decides a task: its must_identify points, and its gold when FREE_FORM."""
    units = list(task.must_identify)
    if task.query_type == "FREE_FORM":
        units.append(task.answer)
    return units


def card_pieces(skill: Skill) -> list[str]:
    """The parts of a skill card a rubric could copy: description, constraints, examples."""
    pieces = [skill.description, *skill.constraints]
    for ex in (skill.positive, skill.negative):
        if ex is not None:
            pieces += [ex.case, ex.why]
    return [p for p in pieces if p.strip()]


def card_overlap(task: Task, skill: Skill) -> dict:
    """Largest content-word share of one deciding point found in one card piece (points with 4+ content
    words), and the word 6-grams shared by the whole deciding text and the whole card."""
    pieces = card_pieces(skill)
    piece_words = [content_words(p) for p in pieces]
    share, where = 0.0, None
    for unit in deciding_units(task):
        cw = content_words(unit)
        if len(cw) < 4:
            continue
        for piece, pw in zip(pieces, piece_words):
            s = len(cw & pw) / len(cw)
            if s > share:
                share, where = s, (unit, piece)
    card_grams: set = set()
    for p in pieces:
        card_grams |= ngrams(p, CARD_SHARED_NGRAM)
    task_grams: set = set()
    for u in deciding_units(task):
        task_grams |= ngrams(u, CARD_SHARED_NGRAM)
    shared = sorted(" ".join(g) for g in task_grams & card_grams)
    return {"content_share": round(share, 3), "shared_ngrams": len(shared), "examples": shared[:3],
            "closest": None if where is None else {"point": where[0], "card": where[1]}}


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def giveaways(passage: str) -> list[dict]:
    """Narrator sentences matching a cue of ``GIVEAWAY_CUES`` (quoted text and reported speech excluded)."""
    hits = []
    for sent in sentences(_QUOTED.sub(" QUOTE. ", passage)):
        narrated = sent
        for name, rx in _CUES:
            m = rx.search(narrated)
            if m and not _SPEECH.search(narrated[: m.start()]):
                hits.append({"cue": name, "match": m.group(0), "sentence": sent})
    return hits


def is_which_person(task: Task) -> bool:
    """A SINGLE_WORD whose gold is a person's name that the question asks for (who / which <role>)."""
    gold = task.answer.strip()
    if task.query_type != "SINGLE_WORD" or not gold[:1].isupper() or not re.fullmatch(r"[A-Z][\w'.\- ]*", gold):
        return False
    if gold not in task.passage:
        return False
    return bool(_WHO_RE.search(task.question))


def ranking_items(task: Task) -> int:
    return len([a for a in task.answer.split(",") if a.strip()])


# ---- similarity ------------------------------------------------------------------------------------------
def tfidf_matrix(texts: list[str]) -> np.ndarray:
    """Rows: L2-normalised TF-IDF vectors (sublinear tf, smoothed idf) over content words."""
    docs = [Counter(w for w in words(t) if w not in _STOP and len(w) > 2) for t in texts]
    vocab = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
    if not vocab:
        return np.zeros((len(texts), 1))
    df = np.zeros(len(vocab))
    for d in docs:
        for w in d:
            df[vocab[w]] += 1
    idf = np.log((1 + len(docs)) / (1 + df)) + 1
    m = np.zeros((len(docs), len(vocab)))
    for i, d in enumerate(docs):
        for w, c in d.items():
            m[i, vocab[w]] = (1 + math.log(c)) * idf[vocab[w]]
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1, norms)


def _split_overlap(hold: list[Task], train: list[Task]) -> dict:
    train_grams: set = set()
    for t in train:
        train_grams |= ngrams(t.passage, SPLIT_NGRAM)
    shares = []
    for t in hold:
        g = ngrams(t.passage, SPLIT_NGRAM)
        shares.append((len(g & train_grams) / len(g) if g else 0.0, t.task_uid))
    m = tfidf_matrix([t.passage for t in hold] + [t.passage for t in train])
    sim = m[: len(hold)] @ m[len(hold):].T
    best = sim.max(axis=1) if sim.size else np.zeros(len(hold))
    arg = sim.argmax(axis=1) if sim.size else np.zeros(len(hold), dtype=int)
    order = np.argsort(-best)[:5]
    pairs = [{"holdout": hold[i].task_uid, "train": train[arg[i]].task_uid, "similarity": round(float(best[i]), 3)}
             for i in order]
    return {"max_shared_8gram_share": round(max((s for s, _ in shares), default=0.0), 4),
            "tasks_sharing_8grams": sum(s > 0 for s, _ in shares),
            "nn_similarity_max": round(float(best.max()) if len(best) else 0.0, 3),
            "nn_similarity_mean": round(float(best.mean()) if len(best) else 0.0, 3),
            "near_duplicates": int((best >= NEAR_DUPLICATE_SIMILARITY).sum()),
            "closest_pairs": pairs}


def _near_duplicates(tasks: list[Task]) -> dict:
    m = tfidf_matrix([t.passage + " " + t.question for t in tasks])
    sim = m @ m.T
    np.fill_diagonal(sim, 0)
    pairs = [(float(sim[i, j]), i, j) for i, j in combinations(range(len(tasks)), 2)
             if sim[i, j] >= NEAR_DUPLICATE_SIMILARITY]
    top = max(((float(sim[i, j]), i, j) for i, j in combinations(range(len(tasks)), 2)), default=(0.0, 0, 0))
    return {"max_similarity": round(top[0], 3),
            "closest_pair": [tasks[top[1]].task_uid, tasks[top[2]].task_uid] if len(tasks) > 1 else [],
            "pairs": len(pairs),
            "pair_ids": [[tasks[i].task_uid, tasks[j].task_uid, round(s, 3)] for s, i, j in sorted(pairs)[::-1][:10]]}


# ---- distributions ---------------------------------------------------------------------------------------
def _yes_shares(tasks: list[Task], cat: Catalog) -> dict:
    groups: dict[str, dict[str, list[int]]] = {"difficulty": defaultdict(list), "category": defaultdict(list)}
    for t in tasks:
        if t.query_type != "YES_NO":
            continue
        y = int(t.answer.lower() == "yes")
        groups["difficulty"][t.difficulty].append(y)
        groups["category"][cat[t.skill].category if t.skill in cat else "?"].append(y)
    yn = [t.answer.lower() == "yes" for t in tasks if t.query_type == "YES_NO"]
    return {"overall": round(sum(yn) / len(yn), 3) if yn else None,
            **{f"by_{k}": {g: {"n": len(v), "yes_share": round(sum(v) / len(v), 3)} for g, v in sorted(d.items())}
               for k, d in groups.items()}}


def _ranking(tasks: list[Task]) -> dict:
    rk = [t for t in tasks if t.query_type == "RANKING"]
    orders = [t for t in rk if t.ranking_kind == "order"]
    choices = [t for t in rk if t.ranking_kind == "choice"]
    two = [t.task_uid for t in choices if (t.option_labels() and len(t.option_labels()) <= 2)]
    return {"n": len(rk), "orders": len(orders), "choices": len(choices),
            "order_lengths": dict(sorted(Counter(ranking_items(t) for t in orders).items())),
            "choice_option_counts": dict(sorted(Counter(len(t.option_labels() or ()) for t in choices).items())),
            "order3_share": round(sum(ranking_items(t) >= 3 for t in orders) / len(rk), 3) if rk else None,
            "two_option_choices": len(two), "two_option_choice_ids": two[:10]}


def _guessing(tasks: list[Task]) -> dict:
    out = {}
    for qt in ("YES_NO", "SINGLE_WORD", "RANKING", "FREE_FORM"):
        ts = [t for t in tasks if t.query_type == qt]
        if not ts:
            continue
        rates = [t.chance_rate for t in ts if t.chance_rate is not None]
        out[qt] = {"n": len(ts), "with_chance_rate": len(rates),
                   "mean_chance_rate": round(sum(rates) / len(rates), 3) if rates else None,
                   "option_counts": dict(sorted(Counter(len(t.options) for t in ts if t.options is not None).items()))}
    return out


def _single_word(tasks: list[Task]) -> dict:
    sw = [t for t in tasks if t.query_type == "SINGLE_WORD"]
    who = [t.task_uid for t in sw if is_which_person(t)]
    return {"n": len(sw), "which_person": len(who), "share": round(len(who) / len(sw), 3) if sw else None,
            "which_person_ids": who, "with_candidates": sum(bool(t.options) for t in sw),
            "two_candidates": sum(len(t.options or ()) == 2 for t in sw)}


def _free_form(tasks: list[Task]) -> dict:
    ff = [t for t in tasks if t.query_type == "FREE_FORM"]
    lengths = [len(t.answer.split()) for t in ff]
    verdict = [t.task_uid for t in ff if re.match(r"\s*(?:yes|no)\b", t.answer, re.IGNORECASE)]
    return {"n": len(ff), "gold_words_max": max(lengths, default=0),
            "gold_words_median": float(np.median(lengths)) if lengths else None,
            "over_limit": sum(n > FREE_FORM_GOLD_WORDS_MAX for n in lengths), "verdict_golds": len(verdict)}


def _difficulty(tasks: list[Task]) -> dict:
    with_basis = [t for t in tasks if t.difficulty_basis is not None]
    bad = [t.task_uid for t in with_basis if difficulty_by_rule(t.difficulty_basis) != t.difficulty]
    return {"with_basis": len(with_basis), "missing_basis": len(tasks) - len(with_basis), "mismatches": len(bad),
            "mismatch_ids": bad[:20], "by_difficulty": dict(sorted(Counter(t.difficulty for t in tasks).items()))}


def _leak_phrases(tasks: list[Task]) -> list[dict]:
    """Content-word bigrams of YES_NO rubrics used by LEAK_PHRASE_MIN_TASKS+ tasks that all share one gold."""
    by_phrase: dict[str, list[str]] = defaultdict(list)
    for t in tasks:
        if t.query_type != "YES_NO":
            continue
        grams = set()
        for point in t.must_identify:
            ws = words(point)
            grams |= {f"{a} {b}" for a, b in pairwise(ws) if a not in _STOP and b not in _STOP}
        for g in grams:
            by_phrase[g].append(t.answer.lower())
    out = [{"phrase": p, "tasks": len(a), "gold": a[0]} for p, a in by_phrase.items()
           if len(a) >= LEAK_PHRASE_MIN_TASKS and len(set(a)) == 1]
    return sorted(out, key=lambda d: (-d["tasks"], d["phrase"]))


def check_demo(demo: Demo, task: Task | None, skill: Skill | None) -> list[str]:
    """What is wrong with one demo: unknown task, a missing ``Step k``, a last line that is not the gold."""
    if task is None:
        return ["task not in the train split"]
    problems = []
    text = next((m["content"] for m in reversed(demo.messages) if m["role"] == "assistant"), "")
    if skill is not None:
        missing = [k for k in range(1, len(skill.procedure) + 1) if not re.search(rf"\bStep {k}\b", text)]
        if missing:
            problems.append(f"no Step {', '.join(map(str, missing))}")
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if not re.match(r"\s*ANSWER\s*:", last):
        problems.append("last line is not an ANSWER line")
    else:
        if task.query_type == "FREE_FORM":
            ok = normalise(last.split(":", 1)[1]) == normalise(task.answer)
        else:
            ok = judge(task, last).status == Status.PASSED
        if not ok:
            problems.append(f"ANSWER line {last.strip()!r} does not pass the gold {task.answer!r}")
    return problems


def _demos(demos: list[Demo], train: list[Task], cat: Catalog) -> dict:
    by_uid = {t.task_uid: t for t in train}
    defects = []
    for d in demos:
        task = by_uid.get(d.task_uid)
        skill = cat[task.skill] if task is not None and task.skill in cat else None
        for p in check_demo(d, task, skill):
            defects.append({"line": d.line, "task_uid": d.task_uid, "problem": p})
    return {"rows": len(demos), "by_condition": dict(Counter(d.condition for d in demos)),
            "defective": len({x["line"] for x in defects}), "defects": defects[:20]}


# ---- the lint --------------------------------------------------------------------------------------------
def lint(splits: dict[str, list[Task]], cat: Catalog, demos: list[Demo] | None = None) -> dict:
    """Every lint figure of a loaded bench (see the module docstring)."""
    all_tasks = [t for ts in splits.values() for t in ts]
    overlaps = {t.task_uid: card_overlap(t, cat[t.skill]) for t in all_tasks if t.skill in cat}
    over = sorted(u for u, o in overlaps.items()
                  if o["content_share"] > CARD_CONTENT_SHARE_MAX or o["shared_ngrams"] > CARD_SHARED_NGRAMS_MAX)
    worst = max(overlaps.items(), key=lambda kv: (kv[1]["shared_ngrams"], kv[1]["content_share"]), default=None)
    hits = {t.task_uid: giveaways(t.passage) for t in all_tasks}
    hits = {u: h for u, h in hits.items() if h}
    cue_counts = Counter(h["cue"] for hs in hits.values() for h in hs)
    out: dict = {
        "card_overlap": {
            "content_share_max": max((o["content_share"] for o in overlaps.values()), default=0.0),
            "shared_6grams_max": max((o["shared_ngrams"] for o in overlaps.values()), default=0),
            "tasks_with_shared_6grams": sum(o["shared_ngrams"] > 0 for o in overlaps.values()),
            "tasks_over_content_share": sum(o["content_share"] > CARD_CONTENT_SHARE_MAX for o in overlaps.values()),
            "tasks_over_limit": len(over), "over_limit_ids": over[:30],
            "by_split": {s: sum(t.task_uid in set(over) for t in ts) for s, ts in splits.items()},
            "worst": None if worst is None else {"task_uid": worst[0], **worst[1]}},
        "giveaways": {"tasks": len(hits), "by_split": {s: sum(t.task_uid in hits for t in ts)
                                                        for s, ts in splits.items()},
                      "by_cue": dict(cue_counts.most_common()),
                      "examples": [{"task_uid": u, **h[0]} for u, h in list(hits.items())[:15]]},
        "difficulty": _difficulty(all_tasks),
        "label_leaks": _leak_phrases(all_tasks),
        "splits": {},
    }
    for name, ts in splits.items():
        words_n = [len(words(t.passage)) for t in ts]
        out["splits"][name] = {
            "tasks": len(ts), "query_types": dict(sorted(Counter(t.query_type for t in ts).items())),
            "passage_words": {"min": min(words_n, default=0), "max": max(words_n, default=0)},
            "yes_share": _yes_shares(ts, cat), "ranking": _ranking(ts), "guessing_floor": _guessing(ts),
            "single_word": _single_word(ts), "free_form": _free_form(ts)}
    if "holdout" in splits and "train" in splits:
        out["holdout_train"] = _split_overlap(splits["holdout"], splits["train"])
    if "holdout" in splits:
        out["holdout_near_duplicates"] = _near_duplicates(splits["holdout"])
    if demos is not None:
        out["demos"] = _demos(demos, splits.get("train", []), cat)
    return out


def violations(lint_figures: dict) -> list[dict]:
    """Each figure past its limit: ``{"limit": NAME, "allowed": ..., "value": ..., "where": ...}``."""
    v: list[dict] = []

    def check(name: str, value, bad: bool, where: str = "") -> None:
        if bad:
            v.append({"limit": name, "allowed": LIMITS[name], "value": value, "where": where})

    co = lint_figures["card_overlap"]
    check("CARD_OVERLAP_TASKS_MAX", co["tasks_over_limit"], co["tasks_over_limit"] > CARD_OVERLAP_TASKS_MAX,
          f"{co['tasks_with_shared_6grams']} share a 6-gram with their card, {co['tasks_over_content_share']} "
          f"over a content-word share of {CARD_CONTENT_SHARE_MAX}")
    g = lint_figures["giveaways"]
    check("GIVEAWAY_TASKS_MAX", g["tasks"], g["tasks"] > GIVEAWAY_TASKS_MAX, str(g["by_split"]))
    d = lint_figures["difficulty"]
    check("DIFFICULTY_BASIS_MISSING_MAX", d["missing_basis"], d["missing_basis"] > DIFFICULTY_BASIS_MISSING_MAX)
    check("DIFFICULTY_MISMATCHES_MAX", d["mismatches"], d["mismatches"] > DIFFICULTY_MISMATCHES_MAX)
    leaks = lint_figures["label_leaks"]
    check("LEAK_PHRASES_MAX", len(leaks), len(leaks) > LEAK_PHRASES_MAX,
          ", ".join(f"{x['phrase']!r} ({x['tasks']} x {x['gold']})" for x in leaks[:5]))
    lo, hi = YES_SHARE_RANGE
    for split, s in lint_figures["splits"].items():
        for key in ("by_difficulty", "by_category"):
            for group, ys in s["yes_share"][key].items():
                check("YES_SHARE_RANGE", ys["yes_share"], not lo <= ys["yes_share"] <= hi,
                      f"{split} {key[3:]} {group} (n={ys['n']})")
        r = s["ranking"]
        if r["n"]:
            check("RANKING_ORDER3_SHARE_MIN", r["order3_share"], r["order3_share"] < RANKING_ORDER3_SHARE_MIN, split)
            check("RANKING_TWO_OPTION_CHOICES_MAX", r["two_option_choices"],
                  r["two_option_choices"] > RANKING_TWO_OPTION_CHOICES_MAX, split)
        fl = s["guessing_floor"].get("RANKING", {}).get("mean_chance_rate")
        check("GUESS_FLOOR_MAX", fl, fl is not None and fl > GUESS_FLOOR_MAX, f"{split} RANKING")
        sw = s["single_word"]
        check("SINGLE_WORD_TWO_CANDIDATES_MAX", sw["two_candidates"],
              sw["two_candidates"] > SINGLE_WORD_TWO_CANDIDATES_MAX, split)
        check("WHICH_PERSON_SHARE_MAX", sw["share"], sw["share"] is not None and sw["share"] > WHICH_PERSON_SHARE_MAX,
              f"{split}: {sw['which_person']} of {sw['n']}")
        ff = s["free_form"]
        check("FREE_FORM_GOLD_WORDS_MAX", ff["gold_words_max"], ff["over_limit"] > 0,
              f"{split}: {ff['over_limit']} of {ff['n']} golds longer")
        check("FREE_FORM_VERDICT_GOLDS_MAX", ff["verdict_golds"], ff["verdict_golds"] > FREE_FORM_VERDICT_GOLDS_MAX,
              split)
    ht = lint_figures.get("holdout_train")
    if ht:
        check("HOLDOUT_TRAIN_NGRAM_SHARE_MAX", ht["max_shared_8gram_share"],
              ht["max_shared_8gram_share"] > HOLDOUT_TRAIN_NGRAM_SHARE_MAX,
              f"{ht['tasks_sharing_8grams']} holdout passages share an 8-gram with train")
        check("HOLDOUT_TRAIN_NEAR_DUPLICATES_MAX", ht["near_duplicates"],
              ht["near_duplicates"] > HOLDOUT_TRAIN_NEAR_DUPLICATES_MAX,
              f"nearest-neighbour TF-IDF cosine max {ht['nn_similarity_max']}")
    nd = lint_figures.get("holdout_near_duplicates")
    if nd:
        check("HOLDOUT_NEAR_DUPLICATES_MAX", nd["pairs"], nd["pairs"] > HOLDOUT_NEAR_DUPLICATES_MAX,
              f"max TF-IDF cosine {nd['max_similarity']}")
    dm = lint_figures.get("demos")
    if dm:
        check("DEMO_DEFECTS_MAX", dm["defective"], dm["defective"] > DEMO_DEFECTS_MAX,
              "; ".join(f"line {x['line']}: {x['problem']}" for x in dm["defects"][:3]))
    return v


def validate(bench: str | Path = "bundled", catalog: str | Path | None = None) -> dict:
    """Load ``bench`` collecting every defect; counts, lint figures and limit violations."""
    errors: list[SkillbenchError] = []
    version = bench_version(bench)
    summary: dict = {"bench_version": version, "skills": 0, "splits": {}, "query_types": {}, "yes_share": None,
                     "errors": [], "violations": []}
    try:
        if catalog:
            cat = load_catalog(catalog)
        else:
            cat = load_catalog(bundled_dir("catalog", str(bench) if str(bench) in BUNDLED_BENCHES else "bundled"))
    except SkillbenchError as err:
        summary["errors"] = [str(err)]
        return summary
    summary["skills"] = len(cat)
    try:
        b = load_bench(bench, cat, errors=errors)
    except SkillbenchError as err:
        summary["errors"] = [str(e) for e in errors] + [str(err)]
        return summary
    qt: Counter = Counter()
    per_skill: dict[str, Counter] = {}
    yes = yn = 0
    for split, tasks in b.splits.items():
        summary["splits"][split] = len(tasks)
        for t in tasks:
            qt[t.query_type] += 1
            per_skill.setdefault(t.skill, Counter())[split] += 1
            if t.query_type == "YES_NO":
                yn += 1
                yes += t.answer.lower() == "yes"
    summary["query_types"] = dict(sorted(qt.items()))
    summary["yes_share"] = yes / yn if yn else None
    summary["per_skill"] = {k: dict(v) for k, v in sorted(per_skill.items())}
    root = bundled_dir("bench_tasks", str(bench)) if str(bench) in BUNDLED_BENCHES else Path(bench)
    demos_path = root / "demos.jsonl" if root.is_dir() else None
    demos = None
    if demos_path is not None and demos_path.is_file():
        demos = load_demos(demos_path, cat, errors=errors)
        summary["demos"] = {"rows": len(demos), "by_condition": dict(Counter(d.condition for d in demos))}
    summary["lint"] = lint(b.splits, cat, demos)
    summary["violations"] = violations(summary["lint"])
    summary["limits"] = {k: list(v) if isinstance(v, tuple) else v for k, v in LIMITS.items()}
    summary["errors"] = [str(e) for e in errors]
    return summary
