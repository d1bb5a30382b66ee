from pathlib import Path

import pytest
import yaml

from pytest_skillbench.bench import bundled_dir, load_catalog
from pytest_skillbench.bench.catalog import Example, Skill, load_skill, render_skill_block
from pytest_skillbench.errors import SkillbenchError

SNAPSHOTS = Path(__file__).parent / "snapshots"
STANDARD_NAMES = """abductive-reasoning accident-fallacy ad-hominem analogical-inference anchoring-bias
appeal-to-authority appeal-to-emotion availability-heuristic base-rate-neglect circular-reasoning
complex-question-loaded-question-with-implicit-assumption confirmation-bias contrapositive
counterfactual-reasoning disjunctive-syllogism emotional-self-regulation enumerative-induction equivocation
false-dilemma folk-physics-common-knowledge-physics framing-effect gamblers-fallacy hasty-generalization
hindsight-bias hypothetical-syllogism metaphor modus-ponens modus-tollens necessary-and-sufficient-conditions
post-hoc-ergo-propter-hoc red-herring regression-to-the-mean self-serving-bias slippery-slope spatial-reasoning
statistical-syllogism straw-man sunk-cost-fallacy transitive-inference tu-quoque""".split()

GOOD = {
    "name": "demo-skill", "category": "logical", "description": "A test skill.",
    "when_to_use": "When testing.", "procedure": ["One.", "Two.", "Three.", "Four.", "Five."],
    "constraints": ["Do not a.", "Do not b.", "Require c."],
    "example": {"positive": {"case": "P case.", "why": "P why."}, "negative": {"case": "N case.", "why": "N why."}},
}


def test_bundled_catalog_has_the_40_standard_skills():
    cat = load_catalog(bundled_dir("catalog"))
    assert sorted(cat.names()) == sorted(STANDARD_NAMES)
    for skill in cat.skills.values():
        assert 5 <= len(skill.procedure) <= 6
        assert len(skill.constraints) >= 3
        assert skill.positive and skill.negative


def test_render_exact_layout():
    skill = Skill(name="demo", category="logical", description="Desc.", when_to_use="Use it.",
                  procedure=("First.", "Second."), constraints=("Do not x.", "Require y."),
                  positive=Example("Pos.", "Because."), negative=Example("Neg.", "Not."))
    assert render_skill_block(skill) == (
        "--- SKILL: demo ---\nDesc.\n\n## When to Use\nUse it.\n\n## Procedure\n1. First.\n2. Second.\n\n"
        "## Constraints\n- Do not x.\n- Require y.\n\n## Example\nPositive: Pos.\nWhy: Because.\n"
        "Negative: Neg.\nWhy: Not.\n--- END SKILL ---")


def test_render_leaves_out_empty_sections():
    skill = Skill(name="bare", category="logical", description="Only a description.")
    assert render_skill_block(skill) == "--- SKILL: bare ---\nOnly a description.\n--- END SKILL ---"


def test_snapshot_of_a_bundled_skill_block():
    """Pins the exact curated-prompt text: a change here changes every curated prompt and cache key."""
    text = load_catalog(bundled_dir("catalog"))["modus-ponens"].render()
    snap = SNAPSHOTS / "modus-ponens.skill.txt"
    assert text == snap.read_text(encoding="utf-8")


def _write(tmp_path, data, name="demo-skill"):
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("procedure"), "procedure"),
    (lambda d: d.update(procedure=["only", "three", "steps"]), "procedure"),
    (lambda d: d.update(constraints=["one", "two"]), "constraints"),
    (lambda d: d.update(category="poetry"), "category"),
    (lambda d: d.update(description=""), "description"),
    (lambda d: d["example"].pop("negative"), "example.negative"),
    (lambda d: d.update(colour="red"), "colour"),
])
def test_malformed_skill_names_file_and_field(tmp_path, mutate, field):
    import copy

    data = copy.deepcopy(GOOD)
    mutate(data)
    p = _write(tmp_path, data)
    with pytest.raises(SkillbenchError) as ei:
        load_skill(p)
    assert ei.value.field == field
    assert str(p) in str(ei.value)


def test_malformed_yaml_reports_line(tmp_path):
    p = _write(tmp_path, "name: demo-skill\nprocedure: [unclosed\n")
    with pytest.raises(SkillbenchError, match="malformed YAML") as ei:
        load_skill(p)
    assert ei.value.line is not None


def test_file_name_must_match_skill_name(tmp_path):
    p = _write(tmp_path, GOOD, name="other-name")
    with pytest.raises(SkillbenchError, match="does not match the file name"):
        load_skill(p)


def test_unknown_skill_lookup_is_clear():
    cat = load_catalog(bundled_dir("catalog"))
    with pytest.raises(SkillbenchError, match="unknown skill 'not-a-skill'"):
        cat["not-a-skill"]
