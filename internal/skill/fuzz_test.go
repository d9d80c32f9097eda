package skill

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// addFixtureSeeds adds every file matching the globs (relative to
// shared/fixtures/schemapin; see fixture) to the fuzz corpus.
func addFixtureSeeds(f *testing.F, globs ...string) {
	f.Helper()
	n := 0
	for _, g := range globs {
		paths, err := filepath.Glob(fixture(f, g))
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			n++
		}
	}
	if n == 0 {
		f.Fatalf("no seed files for %v", globs)
	}
}

// FuzzParseSignature: no panic; whatever parses re-encodes to a document
// that parses to the same encoding (Encode is a fixed point after one
// parse), and the fixtures written by Go/Python/JS re-encode byte for byte.
func FuzzParseSignature(f *testing.F) {
	addFixtureSeeds(f, "vectors/*/.schemapin.sig")
	addConformanceSeeds(f, "real-world-signed-skills/*/.schemapin.sig", "upstream-repo/stale-root-skill/.schemapin.sig")
	for _, s := range []string{`{}`, `null`, `{"file_manifest":{"a":"b"},"SIGNATURE":"x"}`, `{"skill_name":"\ud800<&>"}`, `{"file_manifest":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSignature(data)
		if err != nil {
			return
		}
		enc, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		s2, err := ParseSignature(enc)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", enc, err)
		}
		enc2, _ := s2.Encode()
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not a fixed point:\n%s\n%s", enc, enc2)
		}
		var root [32]byte
		MatchSkillHash(s.SkillHash, root)
		ComputeRoot(s.FileManifest)
	})
}

// FuzzParseDiscovery: no panic; parse∘encode is stable.
func FuzzParseDiscovery(f *testing.F) {
	addFixtureSeeds(f, "vectors/discovery.example.com.json")
	addConformanceSeeds(f, "upstream-repo/go/schemapin.json",
		"upstream-repo/*/examples/*/demo_well_known.json", "upstream-repo/python/examples/demo_well_known.json", "upstream-repo/javascript/demo_well_known.json")
	f.Add([]byte(`{"revoked_keys":[],"public_key_pem":"-----BEGIN PUBLIC KEY-----"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDiscovery(data)
		if err != nil {
			return
		}
		d.PublicKey()
		enc, err := d.Encode()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := ParseDiscovery(enc)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", enc, err)
		}
		enc2, _ := d2.Encode()
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not a fixed point:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzParseRevocation: no panic; what parses re-encodes to a document that
// parses (never loses an entry) to the same encoding and revokes the same
// fingerprints.
func FuzzParseRevocation(f *testing.F) {
	addFixtureSeeds(f, "vectors/revocation.example.com.json")
	f.Add([]byte(`{"revoked_keys":[{"fingerprint":"SHA256:AB","reason":"other"}]}`))
	f.Add([]byte(`{"revoked_keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseRevocation(data)
		if err != nil {
			return
		}
		enc, err := d.Encode()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := ParseRevocation(enc)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", enc, err)
		}
		enc2, _ := d2.Encode()
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not a fixed point:\n%s\n%s", enc, enc2)
		}
		for _, k := range d.RevokedKeys {
			if CheckRevocation(k.Fingerprint, nil, d2) == nil {
				t.Fatalf("%q no longer revoked after a round trip", k.Fingerprint)
			}
		}
	})
}

// FuzzParseDNSTXT: no panic; a parsed record renders to a value that
// parses back to the same record.
func FuzzParseDNSTXT(f *testing.F) {
	addFixtureSeeds(f, "vectors/dns-txt.example.com.txt")
	for _, s := range []string{"v=schemapin1; fp=sha256:AB", "V = schemapin1;;kid= a=b ;fp=sha256:", "v=schemapin1; kid", "fp=sha256:1;v=schemapin1;fp=sha256:2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseDNSTXT(string(data))
		if err != nil {
			return
		}
		s := r.String()
		r2, err := ParseDNSTXT(s)
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", s, data, err)
		}
		if r2 != r {
			t.Fatalf("round trip of %q: %+v != %+v", data, r2, r)
		}
		if !r.Matches(r.Fingerprint) {
			t.Fatalf("record does not match its own fingerprint %q", r.Fingerprint)
		}
	})
}
