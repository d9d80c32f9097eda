// Command go-loader loads a package only if signerd says the org may:
// it opens the file once, has signerd verify what that descriptor holds,
// and loads from the same descriptor.
//
//	go-loader [-socket PATH] -org ORG FILE
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/signerd/signerd/client"
)

func main() {
	socket := flag.String("socket", "", "signerd's socket (default $SIGNCTL_SOCKET, else "+client.DefaultSocket+")")
	org := flag.String("org", "", "the org whose trust and policy decide")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: go-loader [-socket PATH] -org ORG FILE")
		os.Exit(2)
	}
	os.Exit(load(*socket, *org, flag.Arg(0)))
}

// load returns signctl's exit codes: 0 loaded, 1 refused, 2 bad input,
// 3 signerd unreachable, 4 permission denied.
func load(socket, org, path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Close()

	// A sealed copy: what is loaded is the verified bytes even if someone
	// who may write the file changes it in place after the check.
	vf, err := c.OpenVerified(ctx, path, org, client.WithSealedCopy())
	var refusal *client.VerificationError
	switch {
	case errors.As(err, &refusal) && refusal.Reason == client.ReasonMalformedSignature:
		fmt.Printf("bad input %s: %s\n", refusal.Reason, err) // as signctl: exit 2
		return 2
	case errors.As(err, &refusal):
		fmt.Printf("refused %s: %s\n", refusal.Reason, err)
		return 1
	case errors.Is(err, client.ErrPermissionDenied):
		fmt.Println("denied:", err)
		return 4
	case errors.Is(err, client.ErrInvalidArgument), errors.Is(err, client.ErrFileChanged):
		// Not a regular file, unreadable, changed while hashed.
		fmt.Println("bad input:", err)
		return 2
	case err != nil: // unreachable, out of time, failed, an answer it cannot read
		fmt.Println("signerd:", err)
		return 3
	}
	defer vf.Close()

	// Load from the verified descriptor (a native loader would
	// dlopen(vf.Path)); never reopen path.
	code, err := io.ReadAll(vf.File)
	if err != nil {
		fmt.Println("bad input:", err)
		return 2
	}
	fmt.Printf("loaded %s (%s, %s) sha256:%x\n", path, vf.Verdict.Outcome, vf.Verdict.SignerKeyName, sha256.Sum256(code))
	return 0
}
