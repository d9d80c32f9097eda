package skill

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestEncodeFastPath holds Encode's direct writer to encoding/json's
// bytes: documents as SignSkill makes them, and documents of random
// strings with every character encoding/json escapes, optional fields set
// or not, manifests empty, nil or large.
func TestEncodeFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	plain := []string{"a", "Z", "0", "+", "/", "=", ":", ".", " ", "-", "_", "~", "sha256:", "SKILL.md"}
	special := []string{"\"", "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "<", ">", "&", "é", "\u2028", "\u2029", "\xff"}
	// Mostly plain, so that whole documents reach the direct writer, with
	// one character in 300 one that encoding/json escapes.
	word := func() string {
		var b []byte
		for range rng.IntN(6) {
			if rng.IntN(300) == 0 {
				b = append(b, special[rng.IntN(len(special))]...)
			} else {
				b = append(b, plain[rng.IntN(len(plain))]...)
			}
		}
		return string(b)
	}
	maybe := func() string {
		if rng.IntN(2) == 0 {
			return ""
		}
		return word()
	}
	var fast, slow int
	for i := range 5000 {
		s := &Signature{SchemapinVersion: word(), SkillName: word(), SkillHash: word(), Signature: word(), SignedAt: word(),
			ExpiresAt: maybe(), SchemaVersion: maybe(), PreviousHash: maybe(), Canonicalization: maybe(), Domain: word(), SignerKid: word()}
		switch i % 10 {
		case 0:
			s.FileManifest = nil
		case 1:
			s.FileManifest = map[string]string{}
		default:
			s.FileManifest = map[string]string{}
			for range 1 + rng.IntN(40) {
				s.FileManifest[word()] = word()
			}
		}
		if i%2 == 0 { // as SignSkill makes them
			s.SchemapinVersion, s.SkillHash, s.Signature, s.SignedAt = SchemapinVersion13, "sha256:"+string(bytes.Repeat([]byte("ab"), 32)), "MEUCIQD/+a=", "2026-12-04T19:00:00Z"
			s.Domain, s.SignerKid, s.SkillName = "example.com", "sha256:0f", "my-skill"
			s.FileManifest = map[string]string{"SKILL.md": "sha256:00", "scripts/run.sh": "sha256:11", "a/b c.txt": "sha256:22"}
			s.ExpiresAt, s.SchemaVersion, s.PreviousHash, s.Canonicalization = "", "", "", ""
			if i%4 == 0 {
				s.SchemapinVersion, s.ExpiresAt, s.SchemaVersion, s.PreviousHash, s.Canonicalization = SchemapinVersion14, "2027-01-01T00:00:00Z", "1.2", "sha256:aa", CanonicalizationV1
			}
		}
		got, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.encodeJSON()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("document %+v:\nEncode     %q\nencodeJSON %q", s, got, want)
		}
		if _, ok := s.encodePlain(); ok {
			fast++
		} else {
			slow++
		}
	}
	if fast < 2500 || slow < 500 {
		t.Fatalf("the test reached the direct writer %d times and encoding/json %d times", fast, slow)
	}
}

// BenchmarkEncode is a SignSkill-sized document (ten files) through the
// direct writer and through encoding/json.
func BenchmarkEncode(b *testing.B) {
	s := &Signature{SchemapinVersion: SchemapinVersion13, SkillName: "my-skill", SkillHash: "sha256:" + string(bytes.Repeat([]byte("ab"), 32)),
		Signature: string(bytes.Repeat([]byte("A"), 96)), SignedAt: "2026-12-04T19:00:00Z", Domain: "example.com", SignerKid: "sha256:" + string(bytes.Repeat([]byte("cd"), 32)),
		FileManifest: map[string]string{}}
	for i := range 10 {
		s.FileManifest["scripts/file"+string(rune('a'+i))+".py"] = "sha256:" + string(bytes.Repeat([]byte("ef"), 32))
	}
	for _, bc := range []struct {
		name string
		enc  func() ([]byte, error)
	}{{"direct", s.Encode}, {"encoding-json", s.encodeJSON}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.enc(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestEncodeFastPathFields fails when Signature gains or loses a field:
// encodePlain lists them by hand and would drop a new one silently.
func TestEncodeFastPathFields(t *testing.T) {
	if n := reflect.TypeFor[Signature]().NumField(); n != 12 {
		t.Fatalf("Signature has %d fields; encodePlain writes 12: update it and TestEncodeFastPath", n)
	}
	// A nil document encodes as encoding/json encodes it.
	var s *Signature
	got, err := s.Encode()
	if want, _ := s.encodeJSON(); err != nil || !bytes.Equal(got, want) {
		t.Errorf("nil Signature: Encode = %q, %v; want %q", got, err, want)
	}
}
