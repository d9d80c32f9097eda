package skill

import (
	"context"
	"slices"
	"strconv"
	"strings"
)

// TamperReport lists how a folder differs from a signed manifest (spec
// §11.2). Each list is in byte order and non-nil.
type TamperReport struct {
	// Modified paths are in both manifests with different digests.
	Modified []string `json:"modified"`
	// Added paths are only in the folder.
	Added []string `json:"added"`
	// Removed paths are only in the signed manifest.
	Removed []string `json:"removed"`
}

// Clean reports whether nothing differs.
func (r TamperReport) Clean() bool {
	return len(r.Modified) == 0 && len(r.Added) == 0 && len(r.Removed) == 0
}

// DetectTamperedFiles compares a current manifest with a signed one:
// Added are paths only in current, Removed only in signed, Modified in
// both with different digests. The signed manifest is the signature's
// unauthenticated file_manifest, so the report explains a failed
// verification; it proves nothing by itself.
func DetectTamperedFiles(current, signed map[string]string) TamperReport {
	r := TamperReport{Modified: []string{}, Added: []string{}, Removed: []string{}}
	for p, h := range current {
		sh, ok := signed[p]
		switch {
		case !ok:
			r.Added = append(r.Added, p)
		case sh != h:
			r.Modified = append(r.Modified, p)
		}
	}
	for p := range signed {
		if _, ok := current[p]; !ok {
			r.Removed = append(r.Removed, p)
		}
	}
	slices.Sort(r.Modified)
	slices.Sort(r.Added)
	slices.Sort(r.Removed)
	return r
}

// NameReport compares only the paths of two manifests. SchemaPin hashes
// each file as SHA-256(path || content) with no separator, so a name can
// slide into its content ("run.sh" holding "echo" hashes as "run.s"
// holding "hecho") and the root, hence the signature, cannot see it; the
// folder's list of files must therefore be the signed one, path for path.
// It returns nil when the paths are the same, else the full report of
// DetectTamperedFiles, which names the renamed files as added and removed.
func NameReport(current, signed map[string]string) *TamperReport {
	same := len(current) == len(signed)
	for p := range current {
		if _, ok := signed[p]; !ok {
			same = false
			break
		}
	}
	if same {
		return nil
	}
	r := DetectTamperedFiles(current, signed)
	return &r
}

// Summary is a one-line account of the report, for messages.
func (r TamperReport) Summary() string {
	var parts []string
	for _, l := range []struct {
		what  string
		paths []string
	}{{"added", r.Added}, {"removed", r.Removed}, {"modified", r.Modified}} {
		if len(l.paths) > 0 {
			parts = append(parts, l.what+" "+strings.Join(quoteAll(l.paths), ", "))
		}
	}
	return strings.Join(parts, "; ")
}

func quoteAll(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = strconv.Quote(p)
	}
	return out
}

// CheckTampered canonicalizes dir and compares it with sig's file_manifest
// (`signctl skill tampered DIR`). sig nil means <dir>/.schemapin.sig.
func CheckTampered(ctx context.Context, dir string, sig *Signature) (TamperReport, error) {
	if sig == nil {
		s, err := LoadSignature(dir)
		if err != nil {
			return TamperReport{}, err
		}
		sig = s
	}
	m, err := Canonicalize(ctx, dir)
	if err != nil {
		return TamperReport{}, err
	}
	return DetectTamperedFiles(m.Files, sig.FileManifest), nil
}
