//go:build conformance

package skill

// The tests in this file read the third-party SchemaPin corpus
// (shared/fixtures/schemapin/real-world-signed-skills and upstream-repo:
// other people's files, never copied into the repository). They run under
// `make conformance`, from ../shared or $SIGNERD_SHARED, and fail when it
// is missing (sharedDir).

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

// addConformanceSeeds adds the third-party corpus to a fuzz target's seeds.
func addConformanceSeeds(f *testing.F, globs ...string) {
	f.Helper()
	addFixtureSeeds(f, globs...)
}

// TestConformanceVerifyMatrix: the six skills signed by SchemaPin's
// maintainers, as EXPECTED-verify-matrix.json says (runVerifyMatrix).
func TestConformanceVerifyMatrix(t *testing.T) {
	runVerifyMatrix(t, "real-world-signed-skills/", 6)
}

// TestConformanceVerifyStaleRoot: the repository root's own signature is stale (spec
// §14.1): signature_invalid, reported as tampered content.
func TestConformanceVerifyStaleRoot(t *testing.T) {
	dir := copyFixtureDir(t, "upstream-repo", "stale-root-skill")
	r, err := VerifyOffline(t.Context(), VerifyInput{
		Dir: dir, PublicKeyPEM: readFixture(t, "real-world-signed-skills", thirdKeyPEM), Domain: "schemapin.org",
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Valid || r.ErrorCode != CodeSignatureInvalid || r.ErrorMessage != "Signature verification failed" {
		t.Fatalf("%+v", r)
	}
	if !errors.Is(r.Err(), errdefs.ErrPackageTampered) {
		t.Errorf("Err() = %v, want PACKAGE_TAMPERED", r.Err())
	}
	// Its document is the one signed at 703e711, which verifies there.
	a, _ := os.ReadFile(filepath.Join(dir, SignatureFilename))
	b := readFixture(t, "real-world-signed-skills", "schemapin-703e711", SignatureFilename)
	if string(a) != string(b) {
		t.Error("stale-root signature is not the 703e711 one")
	}
}

// TestConformanceWrongKey: a real-world signature does not verify with
// the test key.
func TestConformanceWrongKey(t *testing.T) {
	r, _ := VerifyOffline(t.Context(), VerifyInput{Dir: copyFixtureDir(t, "real-world-signed-skills", "symbiont-57a8847"), PublicKeyPEM: readFixture(t, "vectors", "keys", "pub.pem")})
	if r.Valid {
		t.Error("real-world skill verifies with the test key")
	}
}

// TestConformanceTamperStaleRoot: the stale root signature reports SKILL.md
// modified and nothing else.
func TestConformanceTamperStaleRoot(t *testing.T) {
	stale, err := CheckTampered(t.Context(), copyFixtureDir(t, "upstream-repo", "stale-root-skill"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stale.Modified, []string{"SKILL.md"}) || len(stale.Added)+len(stale.Removed) != 0 {
		t.Errorf("stale root: %+v", stale)
	}
}

// TestConformanceUpstreamDiscovery: upstream demo documents (schema 1.1,
// revoked_keys lists) parse and validate.
func TestConformanceUpstreamDiscovery(t *testing.T) {
	for _, p := range [][]string{{"upstream-repo", "go", "schemapin.json"}, {"upstream-repo", "python", "examples", "demo_well_known.json"}, {"upstream-repo", "javascript", "demo_well_known.json"}} {
		d, err := ParseDiscovery(readFixture(t, p...))
		if err != nil || d.Validate() != nil {
			t.Errorf("%v: %v", p, err)
		}
	}
}

// TestConformanceThirdKey: the maintainers' recovered key has the
// fingerprint their signatures name.
func TestConformanceThirdKey(t *testing.T) {
	if fp, _ := FingerprintPEM(readFixture(t, "real-world-signed-skills", thirdKeyPEM)); fp != "sha256:0fa46514f2ddce1503878d4594dd12617706de946a716cecd60533428b53f862" {
		t.Errorf("thirdkey fingerprint %s", fp)
	}
}

// TestConformanceSkillName: the real-world SKILL.md names "symbiont" while
// its signature says "Symbiont" (a --skill-name override).
func TestConformanceSkillName(t *testing.T) {
	if got, ok := SkillNameFromFrontMatter(readFixture(t, "real-world-signed-skills", "symbiont-422944c", "SKILL.md")); got != "symbiont" || !ok {
		t.Errorf("%q, %v", got, ok)
	}
}
