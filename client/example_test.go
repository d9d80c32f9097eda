package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/signerd/signerd/client"
	signerv1 "github.com/signerd/signerd/gen/signer/v1"
)

// Dial with no address uses $SIGNCTL_SOCKET, else /run/signerd/signerd.sock,
// as signctl does. The generated stubs are there for every other RPC.
func ExampleDial() {
	c, err := client.Dial("")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Health.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{})
	if err != nil {
		log.Fatal(c.FromStatus(err))
	}
	fmt.Println(resp.GetStatus())
	// Output: SERVING
}

// A loader opens, verifies and loads one descriptor: what it reads (or
// dlopens through Path) is exactly what signerd verified, even if the file
// on disk is replaced after the check.
func ExampleClient_OpenVerified() {
	ctx := context.Background()
	c, err := client.Dial("")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	vf, err := c.OpenVerified(ctx, "testdata/libhello.so", "acme")
	if err != nil {
		log.Fatal(err) // a refusal, or signerd is down: load nothing
	}
	defer vf.Close()
	code, err := io.ReadAll(vf.File) // or dlopen(vf.Path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(vf.Verdict.Outcome, "by", vf.Verdict.SignerKeyName)
	fmt.Println(strings.HasPrefix(vf.Path, "/proc/self/fd/"))
	fmt.Printf("%q\n", code)
	// Output:
	// VERIFIED by release
	// true
	// "hello from a signed library\n"
}

// Refusals are typed: errors.Is picks the reason, errors.As the details.
func ExampleClient_OpenVerified_refused() {
	ctx := context.Background()
	c, err := client.Dial("")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for _, path := range []string{"testdata/libstranger.so", "testdata/libold.so", "testdata/libunsigned.so"} {
		vf, err := c.OpenVerified(ctx, path, "acme")
		switch {
		case errors.Is(err, client.ErrUntrustedSigner):
			fmt.Println(path, "refused: signed by a key acme does not trust")
		case errors.Is(err, client.ErrKeyRevoked):
			fmt.Println(path, "refused: signed by a revoked key")
		case errors.Is(err, client.ErrSignatureNotFound):
			fmt.Println(path, "refused: unsigned, and acme requires signatures")
		case err != nil:
			fmt.Println(path, "refused:", err)
		default:
			vf.Close()
			fmt.Println(path, "loaded")
		}
	}
	// Output:
	// testdata/libstranger.so refused: signed by a key acme does not trust
	// testdata/libold.so refused: signed by a revoked key
	// testdata/libunsigned.so refused: unsigned, and acme requires signatures
}

// An org whose policy does not require signatures admits unsigned code;
// the Verdict says so, and a loader that wants only signed code checks it.
func ExampleVerdict_Verified() {
	ctx := context.Background()
	c, err := client.Dial("")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	vf, err := c.OpenVerified(ctx, "testdata/libunsigned.so", "dev")
	if err != nil {
		log.Fatal(err)
	}
	defer vf.Close()
	fmt.Println(vf.Verdict.Outcome, vf.Verdict.Verified())
	// Output: UNSIGNED_ADMITTED false
}

// A build farm signs a file; the response holds the detached .sig
// document to publish next to it.
func ExampleClient_SignFile() {
	c, err := client.Dial("")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	resp, err := c.SignFile(context.Background(), "testdata/libhello.so", "release")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetKeyName(), resp.GetAlgorithm(), len(resp.GetSignature()))
	fmt.Println(strings.Contains(string(resp.GetSignatureDocument()), resp.GetKeyFingerprint()))
	// Output:
	// release ALGORITHM_ED25519 64
	// true
}

// SignBatch signs many digests over one stream; one bad item does not stop
// the others.
func ExampleClient_SignBatch() {
	ctx := context.Background()
	c, err := client.Dial("")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var reqs []*signerv1.SignRequest
	for _, key := range []string{"release", "no-such-key", "release"} {
		digest := make([]byte, client.DigestSize) // sha256 of the artifact
		reqs = append(reqs, &signerv1.SignRequest{KeyName: key, Digest: digest, ArtifactName: "artifact-for-" + key})
	}
	err = c.SignBatch(ctx, reqs, func(i int, resp *signerv1.SignResponse, itemErr error) error {
		if itemErr != nil {
			fmt.Println(i, "failed:", errors.Is(itemErr, client.ErrNotFound))
			return nil
		}
		fmt.Println(i, "signed by", resp.GetKeyName())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// 0 signed by release
	// 1 failed: true
	// 2 signed by release
}

// Verify checks a digest the caller computed, with the detached signature
// document if it has one (nil: signerd's records).
func ExampleClient_Verify() {
	ctx := context.Background()
	c, err := client.Dial("")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	resp, err := c.SignFile(ctx, "testdata/libhello.so", "release")
	if err != nil {
		log.Fatal(err)
	}
	var digest [client.DigestSize]byte
	copy(digest[:], "not the digest of libhello.so....")
	_, err = c.Verify(ctx, "acme", digest, resp.GetSignatureDocument())
	var refusal *client.VerificationError
	if errors.As(err, &refusal) {
		fmt.Println(refusal.Reason, errors.Is(err, client.ErrTampered))
	}
	// Output: PACKAGE_TAMPERED true
}
