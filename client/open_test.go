package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/signerd/signerd/client"
)

func dial(t *testing.T, address string) *client.Client {
	t.Helper()
	c, err := client.Dial(address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func copyFile(t *testing.T, from, to string) []byte {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenVerifiedSwapAfterCheck replaces the verified file on disk, by
// rename and by unlink and re-create, after OpenVerified returned: what
// the returned descriptor and its /proc/self/fd path give is still the
// verified bytes, while the path on disk gives the new ones.
func TestOpenVerifiedSwapAfterCheck(t *testing.T) {
	c := dial(t, env.socket)
	for _, swap := range []struct {
		name string
		do   func(path string, evil []byte) error
	}{
		{"rename over", func(path string, evil []byte) error {
			tmp := path + ".new"
			if err := os.WriteFile(tmp, evil, 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, path)
		}},
		{"unlink and re-create", func(path string, evil []byte) error {
			if err := os.Remove(path); err != nil {
				return err
			}
			return os.WriteFile(path, evil, 0o644)
		}},
	} {
		t.Run(swap.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "libhello.so")
			good := copyFile(t, "testdata/libhello.so", path)
			vf, err := c.OpenVerified(context.Background(), path, "acme")
			if err != nil {
				t.Fatal(err)
			}
			defer vf.Close()
			evil := []byte("malicious code swapped in after the check\n")
			if err := swap.do(path, evil); err != nil {
				t.Fatal(err)
			}
			if onDisk, _ := os.ReadFile(path); !bytes.Equal(onDisk, evil) {
				t.Fatalf("the swap did not happen: %q", onDisk)
			}
			loaded, err := io.ReadAll(vf.File)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(loaded, good) {
				t.Fatalf("the descriptor gives %q, want the verified %q", loaded, good)
			}
			byPath, err := os.ReadFile(vf.Path) // what dlopen(vf.Path) maps
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(byPath, good) {
				t.Fatalf("%s gives %q, want the verified %q", vf.Path, byPath, good)
			}
			if sha256.Sum256(loaded) != vf.Digest {
				t.Fatal("Digest is not the SHA-256 of the loaded bytes")
			}
		})
	}
}

// TestOpenVerifiedInPlaceWrite writes over the verified file's own inode
// after OpenVerified returned. Without WithSealedCopy the descriptor is
// that inode, so the write shows through (the documented limit); with it,
// File and Path give the verified bytes, and the copy refuses writes and
// resizing even through a descriptor opened for writing.
func TestOpenVerifiedInPlaceWrite(t *testing.T) {
	c := dial(t, env.socket)
	for _, tc := range []struct {
		name      string
		opts      []client.VerifyOption
		wantGood  bool
		wantMemfd bool
	}{
		{"the file's own inode", nil, false, false},
		{"WithSealedCopy", []client.VerifyOption{client.WithSealedCopy()}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "libhello.so")
			good := copyFile(t, "testdata/libhello.so", path)
			vf, err := c.OpenVerified(context.Background(), path, "acme", tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer vf.Close()
			// Same length, same inode: O_TRUNC is not needed to change it.
			evil := bytes.Repeat([]byte{0xcc}, len(good))
			w, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(evil); err != nil {
				t.Fatal(err)
			}
			w.Close()
			byPath, err := os.ReadFile(vf.Path) // what dlopen(vf.Path) maps
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Equal(byPath, good); got != tc.wantGood {
				t.Fatalf("%s gives the verified bytes: %v, want %v", vf.Path, got, tc.wantGood)
			}
			target, _ := os.Readlink(vf.Path)
			if isMemfd := strings.HasPrefix(target, "/memfd:signerd-verified:libhello.so"); isMemfd != tc.wantMemfd {
				t.Fatalf("%s links to %q; memfd: %v, want %v", vf.Path, target, isMemfd, tc.wantMemfd)
			}
			if !tc.wantMemfd {
				return
			}
			if sha256.Sum256(byPath) != vf.Digest {
				t.Fatal("Digest is not the SHA-256 of the sealed bytes")
			}
			rw, err := os.OpenFile(vf.Path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer rw.Close()
			if _, err := rw.Write([]byte("x")); !errors.Is(err, syscall.EPERM) {
				t.Fatalf("write to the sealed copy: %v, want EPERM", err)
			}
			if err := rw.Truncate(0); !errors.Is(err, syscall.EPERM) {
				t.Fatalf("truncate the sealed copy: %v, want EPERM", err)
			}
			loaded, err := io.ReadAll(vf.File)
			if err != nil || !bytes.Equal(loaded, good) {
				t.Fatalf("File gives %d bytes (%v), want the %d verified ones", len(loaded), err, len(good))
			}
		})
	}
}

// TestOpenVerifiedRefusals: every refusal and bad input is a typed error
// and no file.
func TestOpenVerifiedRefusals(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.so")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(dir, "libhello.so")
	copyFile(t, "testdata/libstranger.so", tampered)
	copyFile(t, filepath.Join(env.dir, "libhello.so.sig"), tampered+".sig")
	malformed := filepath.Join(dir, "libmalformed.so")
	copyFile(t, "testdata/libhello.so", malformed)
	if err := os.WriteFile(malformed+".sig", []byte("{not a signature"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Larger than signerd and signctl read a document: malformed, as there.
	oversize := filepath.Join(dir, "liboversize.so")
	copyFile(t, "testdata/libhello.so", oversize)
	if err := os.WriteFile(oversize+".sig", bytes.Repeat([]byte(" "), 64<<10+1), 0o644); err != nil {
		t.Fatal(err)
	}
	growing := filepath.Join(dir, "growing.so")
	copyFile(t, "testdata/libhello.so", growing)
	link := filepath.Join(dir, "link-to-dir")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	// A socket file nothing listens on: the daemon is down.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	cases := []struct {
		name, path, org string
		socket          string
		grow            bool
		want            error
	}{
		{"tampered", tampered, "acme", env.socket, false, client.ErrTampered},
		{"untrusted signer", "testdata/libstranger.so", "acme", env.socket, false, client.ErrUntrustedSigner},
		{"revoked key", "testdata/libold.so", "acme", env.socket, false, client.ErrKeyRevoked},
		{"unsigned, signatures required", "testdata/libunsigned.so", "acme", env.socket, false, client.ErrSignatureNotFound},
		{"malformed signature", malformed, "acme", env.socket, false, client.ErrMalformedSignature},
		{"signature over 64 KiB", oversize, "acme", env.socket, false, client.ErrMalformedSignature},
		{"no org", "testdata/libhello.so", "", env.socket, false, client.ErrInvalidArgument},
		{"directory", dir, "acme", env.socket, false, client.ErrNotRegularFile},
		{"symlink to a directory", link, "acme", env.socket, false, client.ErrNotRegularFile},
		{"FIFO", fifo, "acme", env.socket, false, client.ErrNotRegularFile},
		{"device", "/dev/null", "acme", env.socket, false, client.ErrNotRegularFile},
		{"missing file", filepath.Join(dir, "nope.so"), "acme", env.socket, false, client.ErrInvalidArgument},
		// /proc files say size 0 and hold more: what was hashed is not
		// what the size promised.
		{"size differs from content", "/proc/self/status", "acme", env.socket, false, client.ErrFileChanged},
		{"grows while hashed", growing, "acme", env.socket, true, client.ErrFileChanged},
		{"daemon down: no socket", "testdata/libhello.so", "acme", filepath.Join(dir, "absent.sock"), false, client.ErrUnavailable},
		{"daemon down: stale socket", "testdata/libhello.so", "acme", stale, false, client.ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.grow {
				defer client.SetAfterChunk(func() {
					f, err := os.OpenFile(tc.path, os.O_WRONLY|os.O_APPEND, 0)
					if err != nil {
						t.Error(err)
						return
					}
					defer f.Close()
					if _, err := f.WriteString("appended while hashed\n"); err != nil {
						t.Error(err)
					}
				})()
			}
			vf, err := dial(t, tc.socket).OpenVerified(context.Background(), tc.path, tc.org)
			if vf != nil {
				vf.Close()
				t.Fatalf("OpenVerified(%s) returned a file; want %v", tc.path, tc.want)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("OpenVerified(%s) = %v; want an error that is %v", tc.path, err, tc.want)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
}

// TestOpenVerifiedUnknownOrg: an org nobody configured loads nothing.
func TestOpenVerifiedUnknownOrg(t *testing.T) {
	vf, err := dial(t, env.socket).OpenVerified(context.Background(), "testdata/libhello.so", "no-such-org")
	if vf != nil {
		vf.Close()
		t.Fatal("an unknown org loaded a file")
	}
	if !errors.Is(err, client.ErrUnknownOrg) {
		t.Fatalf("err = %v; want ErrUnknownOrg", err)
	}
}

// TestOpenVerifiedWithSignature: WithSignature's document is the one
// checked, over the file's .sig and signerd's records.
func TestOpenVerifiedWithSignature(t *testing.T) {
	c := dial(t, env.socket)
	dir := t.TempDir()
	path := filepath.Join(dir, "libhello.so")
	copyFile(t, "testdata/libhello.so", path)
	// A .sig beside it that is not even a signature: WithSignature wins.
	if err := os.WriteFile(path+".sig", []byte("{not a signature"), 0o644); err != nil {
		t.Fatal(err)
	}
	helloSig, err := os.ReadFile(filepath.Join(env.dir, "libhello.so.sig"))
	if err != nil {
		t.Fatal(err)
	}
	strangerSig, err := os.ReadFile(filepath.Join(env.dir, "libstranger.so.sig"))
	if err != nil {
		t.Fatal(err)
	}
	vf, err := c.OpenVerified(context.Background(), path, "acme", client.WithSignature(helloSig))
	if err != nil {
		t.Fatal(err)
	}
	vf.Close()
	if !vf.Verdict.Verified() || vf.Verdict.SignatureSource != "detached" {
		t.Fatalf("verdict %+v, want verified from the detached document", vf.Verdict)
	}
	vf, err = c.OpenVerified(context.Background(), path, "acme", client.WithSignature(strangerSig))
	if vf != nil || !errors.Is(err, client.ErrTampered) {
		t.Fatalf("another file's signature: %v, want ErrTampered and no file", err)
	}
}
