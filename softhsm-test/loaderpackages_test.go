package softhsmtest

import (
	"os"
	"testing"
)

// loaderPackages prepares what the loader tests in every language load:
// org acme requires signatures and trusts key release, org dev trusts it
// but admits unsigned packages; good.so is signed by release, strange.so
// by a key nobody trusts, tampered.so carries good.so's signature, and
// unsigned.so has none. It returns their directory and paths.
func loaderPackages(t *testing.T, d *daemon) (dir, good, strange, tampered, unsigned string) {
	t.Helper()
	dir = t.TempDir()
	mustSignctl(t, d, "key", "create", "release")
	mustSignctl(t, d, "key", "create", "stranger")
	mustSignctl(t, d, "trust", "add", "--org", "acme", "--key", "release")
	mustSignctl(t, d, "policy", "set", "--org", "acme", "--require-signatures=true")
	mustSignctl(t, d, "trust", "add", "--org", "dev", "--key", "release")
	mustSignctl(t, d, "policy", "set", "--org", "dev", "--require-signatures=false")
	good = writeFile(t, dir, "good.so", []byte("good library"))
	mustSignctl(t, d, "sign", good, "--key", "release")
	strange = writeFile(t, dir, "strange.so", []byte("stranger's library"))
	mustSignctl(t, d, "sign", strange, "--key", "stranger")
	tampered = writeFile(t, dir, "tampered.so", []byte("good library, patched"))
	goodSig, err := os.ReadFile(good + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "tampered.so.sig", goodSig)
	unsigned = writeFile(t, dir, "unsigned.so", []byte("unsigned library"))
	return dir, good, strange, tampered, unsigned
}
