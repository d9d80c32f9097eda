package skill

import (
	"bytes"
	"io"
	"path/filepath"
	"regexp"
	"strings"
)

// SkillFile is the file whose YAML front matter names a skill.
const SkillFile = "SKILL.md"

// maxSkillFileScan bounds how much of SKILL.md is read to find the name.
// The front matter ends at the first "\n---", so for any real skill the
// result equals upstream's whole-file match; a front matter longer than
// this falls back to the folder name.
const maxSkillFileScan = 1 << 20

// The exact regexes of the Go, Python and JS SDKs (spec §11.3), including
// their quirks: the front matter must start at byte 0 (a BOM defeats it),
// "name:" must start a line, quotes and '#' cannot appear in the value,
// and `\s*` after "name:" may cross a newline.
var (
	frontMatterRE = regexp.MustCompile(`(?s)^---\s*\n(.*?)\n---`)
	nameRE        = regexp.MustCompile(`(?m)^name:\s*['"]?([^'"#\n]+?)['"]?\s*$`)
)

// SkillNameFromFrontMatter extracts the name from SKILL.md content as the
// Go/Python/JS SDKs do (spec §11.3). ok is false when they would fall back
// to the folder name.
func SkillNameFromFrontMatter(content []byte) (name string, ok bool) {
	fm := frontMatterRE.FindSubmatch(content)
	if fm == nil {
		return "", false
	}
	m := nameRE.FindSubmatch(fm[1])
	if m == nil {
		return "", false
	}
	name = strings.TrimSpace(string(m[1]))
	return name, name != ""
}

// ParseSkillName returns the skill name of dir: the front-matter name of
// SKILL.md (SkillNameFromFrontMatter), else the base name of the absolute
// path of dir (upstream Go's filepath.Base(filepath.Abs(dir))). Unlike
// upstream, a SKILL.md that is a symlink or not a regular file is ignored:
// canonicalization skips symlinks, so a name read through one would come
// from content the signature does not cover, and a FIFO would block.
func ParseSkillName(dir string) string {
	if f, err := openRegular(filepath.Join(dir, SkillFile)); err == nil {
		var buf bytes.Buffer
		_, rerr := buf.ReadFrom(io.LimitReader(f, maxSkillFileScan))
		f.Close()
		if rerr == nil {
			if name, ok := SkillNameFromFrontMatter(buf.Bytes()); ok {
				return name
			}
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return filepath.Base(abs)
}
