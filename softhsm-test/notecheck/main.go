// Command notecheck verifies a signed note with golang.org/x/mod/sumdb/note
// and nothing of signerd: the end-to-end tests build it and check the
// daemon's checkpoints with it, so that the log key's signatures are judged
// by the checksum database's own reader, in a binary of its own.
//
//	notecheck VERIFIER-KEY NOTE-FILE
//
// It prints the note's text and exits 0 when the note carries a valid
// signature by the key, 1 when it does not, 2 on bad usage.
package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: notecheck VERIFIER-KEY NOTE-FILE")
		os.Exit(2)
	}
	v, err := note.NewVerifier(strings.TrimSpace(os.Args[1]))
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifier key:", err)
		os.Exit(2)
	}
	msg, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fmt.Fprintln(os.Stderr, "note does not verify:", err)
		os.Exit(1)
	}
	fmt.Print(n.Text)
}
