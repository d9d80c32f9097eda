package service

import (
	"regexp"
	"strings"
	"testing"
)

// keyNameRE is the rule validKeyName implements by hand.
var keyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// TestValidKeyNameMatchesRegexp: validKeyName agrees with the regexp on
// edge cases, on every name of one and two bytes, and on fuzzed names.
func TestValidKeyNameMatchesRegexp(t *testing.T) {
	names := []string{
		"", "a", "A", "0", ".", "_", "-", "a.", "a_", "a-", ".a", "-a", "_a",
		"release", "release-2026.v1_x", "a b", "a\n", "a\x00", "é", "aé",
		strings.Repeat("a", 127), strings.Repeat("a", 128), strings.Repeat("a", 129),
		"a" + strings.Repeat(".", 127), "a" + strings.Repeat(".", 128),
		"a\n" + strings.Repeat("b", 3), "release\n",
	}
	for c := 0; c < 256; c++ {
		names = append(names, string(rune(c)), string([]byte{byte(c)}), "a"+string([]byte{byte(c)}), string([]byte{byte(c)})+"a")
	}
	for _, n := range names {
		if got, want := validKeyName(n), keyNameRE.MatchString(n); got != want {
			t.Errorf("validKeyName(%q) = %v, the regexp says %v", n, got, want)
		}
	}
}

func FuzzValidKeyName(f *testing.F) {
	for _, s := range []string{"release", "a.b-c_d", "-a", strings.Repeat("z", 128), "a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n string) {
		if got, want := validKeyName(n), keyNameRE.MatchString(n); got != want {
			t.Fatalf("validKeyName(%q) = %v, the regexp says %v", n, got, want)
		}
	})
}

func BenchmarkValidateKeyName(b *testing.B) {
	for range b.N {
		if ValidateKeyName("release-ed25519.v2") != nil {
			b.Fatal("refused")
		}
	}
}
