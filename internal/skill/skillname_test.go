package skill

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseSkillNameCases checks every case of skill-name-cases against the
// Go/Python/JS column of its expected file (spec §11.3). "x (fallback)"
// means the folder name; any other "(…)" is an explanation.
func TestParseSkillNameCases(t *testing.T) {
	var expected map[string]json.RawMessage
	if err := json.Unmarshal(readFixture(t, "vectors", "skill-name-cases.expected.json"), &expected); err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, raw := range expected {
		if name == "note" {
			continue
		}
		var e struct {
			GoPyJS string `json:"go_py_js"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		want := e.GoPyJS
		if strings.HasSuffix(want, " (fallback)") {
			want = name
		} else if i := strings.Index(want, " ("); i >= 0 {
			want = want[:i]
		}
		n++
		t.Run(name, func(t *testing.T) {
			dir := copyFixtureDir(t, "vectors", "skill-name-cases", name)
			if got := ParseSkillName(dir); got != want {
				t.Errorf("ParseSkillName = %q, want %q", got, want)
			}
		})
	}
	if n != 12 {
		t.Errorf("%d cases, want 12", n)
	}
}

func TestParseSkillNameExtra(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"blank quoted", "---\nname: '  '\n---\n", ""},
		{"trailing spaces", "---\nname:   spaced out   \n---\n", "spaced out"},
		{"front matter later", "x\n---\nname: a\n---\n", ""},
	}
	for _, tt := range tests {
		got, ok := SkillNameFromFrontMatter([]byte(tt.content))
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, ok, tt.want)
		}
	}
	// No SKILL.md, and a symlinked SKILL.md, fall back to the folder name.
	dir := filepath.Join(t.TempDir(), "my-folder")
	os.Mkdir(dir, 0o755)
	if got := ParseSkillName(dir); got != "my-folder" {
		t.Errorf("no SKILL.md: %q", got)
	}
	target := filepath.Join(t.TempDir(), "elsewhere.md")
	os.WriteFile(target, []byte("---\nname: from-link\n---\n"), 0o644)
	if err := os.Symlink(target, filepath.Join(dir, SkillFile)); err == nil {
		if got := ParseSkillName(dir); got != "my-folder" {
			t.Errorf("symlinked SKILL.md: %q", got)
		}
	}
}
