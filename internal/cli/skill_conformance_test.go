//go:build conformance

package cli

// Tests over the third-party SchemaPin corpus (real-world-signed-skills,
// upstream-repo: other people's files, never copied into the repository).
// They run under `make conformance`, from ../shared or $SIGNERD_SHARED,
// and fail when it is missing (skillSharedDir).

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestConformanceSkillVerifyMatrix: the six skills signed by SchemaPin's
// maintainers, through signctl skill verify (runSkillVerifyMatrix).
func TestConformanceSkillVerifyMatrix(t *testing.T) {
	runSkillVerifyMatrix(t, "real-world-signed-skills/", 6)
}

// TestConformanceSkillTampered: the upstream repository's stale root
// signature reports SKILL.md modified.
func TestConformanceSkillTampered(t *testing.T) {
	runSkillTampered(t, []skillTamperedCase{
		{"stale upstream root signature", []string{"upstream-repo", "stale-root-skill"}, ExitVerifyFail,
			[]string{"SKILL.md"}, nil, nil},
	})
}

// TestConformanceSkillTamperedExplicitSignature: the sample folder compared
// with another skill's manifest (--signature).
func TestConformanceSkillTamperedExplicitSignature(t *testing.T) {
	dir := copySkillFixture(t, "vectors", "sample-skill-go-signed")
	// The sample folder compared with another skill's manifest
	// (SKILL.md and CHANGELOG.md).
	other := skillFixture(t, "real-world-signed-skills", "symbiont-57a8847", ".schemapin.sig")
	r := runSignctl(t, "skill", "tampered", dir, "--signature", other, "-o", "json")
	wantSkillExit(t, r, ExitVerifyFail)
	var got skillTamperedOutput
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Modified, []string{"SKILL.md"}) || !slices.Equal(got.Removed, []string{"CHANGELOG.md"}) ||
		!slices.Equal(got.Added, []string{"examples/config.json", "scripts/run.py"}) {
		t.Errorf("report %+v", got)
	}
}
