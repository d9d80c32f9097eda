// Package logproof checks, offline, what signerd's verifiable log claims:
// C2SP tlog-checkpoint signed notes (checkpoint.go), proof bundles that a
// record is in the log (bundle.go), and whether a new checkpoint extends one
// a witness accepted before (monitor.go).
//
// It makes no proofs and knows no store or transport: the daemon builds
// proofs in internal/store, this package verifies them with
// github.com/transparency-dev/merkle's RFC 9162 verifier and
// golang.org/x/mod/sumdb/note, so that signctl checks the daemon's output
// with code other than the code that made it.
package logproof
