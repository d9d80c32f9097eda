package client_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/signerd/signerd/client"
)

// TestOpenVerifiedNeverOpensSwappedFIFO: the path is a regular file when
// OpenVerified checks it and a FIFO (it could be a device) by the time it
// opens it. What is opened for reading must be the inode that was checked:
// a FIFO or device is never opened (opening one can block, or act on the
// device). A writer blocked in open(FIFO, O_WRONLY) returns exactly when a
// reader opens the FIFO.
func TestOpenVerifiedNeverOpensSwappedFIFO(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "libhello.so")
	good := copyFile(t, "testdata/libhello.so", path)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// The writer opens the FIFO by a second name, which the swap leaves.
	writerName := filepath.Join(dir, "fifo-writer")
	if err := os.Link(fifo, writerName); err != nil {
		t.Fatal(err)
	}
	writerIn := make(chan struct{})
	go func() {
		defer close(writerIn)
		f, err := os.OpenFile(writerName, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		f.Close()
	}()
	defer func() { // let the writer go if nobody opened the FIFO
		if r, err := os.OpenFile(writerName, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			<-writerIn
			r.Close()
		}
	}()
	defer client.SetAfterTypeCheck(func() {
		if err := os.Rename(path, path+".checked"); err != nil {
			t.Error(err)
		}
		if err := os.Rename(fifo, path); err != nil {
			t.Error(err)
		}
	})()

	vf, err := dial(t, env.socket).OpenVerified(context.Background(), path, "acme")
	if vf != nil {
		defer vf.Close()
	}
	select {
	case <-writerIn:
		t.Fatalf("OpenVerified opened the FIFO swapped in after the check (err %v)", err)
	case <-time.After(time.Second):
	}
	// What it opened is the file it checked, and that verifies.
	if err != nil {
		t.Fatalf("OpenVerified: %v, want the checked file verified", err)
	}
	st, serr := vf.File.Stat()
	if serr != nil || !st.Mode().IsRegular() || st.Size() != int64(len(good)) {
		t.Fatalf("opened %v (%v), want the checked regular file", st, serr)
	}
}
