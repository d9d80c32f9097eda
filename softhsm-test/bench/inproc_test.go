package bench

// The in-process ceilings run in a child process: this test binary
// re-executed with SIGNERD_BENCH_CHILD set, which opens its own KeyStore on
// the daemon's token (same SoftHSM2 library, same token directory, the very
// keys the daemon signs with) and runs measurements on request while the
// daemon is idle. A child rather than this process because SoftHSM2
// allows one initialisation of the library per process, and so
// that the ceiling is a process of its own, like the daemon, not sharing a
// Go runtime with 32 gRPC clients.
//
// Protocol: one JSON childRequest per line on the child's stdin, one JSON
// childResponse per line on its stdout; EOF on stdin closes the KeyStore
// and ends the child.

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/edcheck"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/pkgsig"
	"github.com/signerd/signerd/internal/server"
)

// childSpec is what the child needs to open the token; it travels in the
// environment (never argv, for the PIN).
type childSpec struct {
	Module string     `json:"module"`
	Label  string     `json:"label"`
	PIN    string     `json:"pin"`
	Keys   []childKey `json:"keys"`
	// FloorSocket is where the child serves its floor server.
	FloorSocket string `json:"floor_socket"`
	// FloorVerifyKey is the raw Ed25519 key the floor server's Verify
	// checks documents against.
	FloorVerifyKey []byte `json:"floor_verify_key"`
}

// childKey is a key the daemon created: its CKA_ID and SPKI DER, as
// recorded in the daemon's database.
type childKey struct {
	Algorithm string `json:"algorithm"`
	CKAID     []byte `json:"cka_id"`
	PublicDER []byte `json:"public_der"`
}

type childRequest struct {
	// Op is "sign" (Algorithm with Workers goroutines through the
	// KeyStore) or "verify" (pkgsig.Parse + pkgsig.Check of Cloacina
	// documents, Workers goroutines).
	Op        string        `json:"op"`
	Algorithm string        `json:"algorithm,omitempty"`
	Workers   int           `json:"workers"`
	Warm      time.Duration `json:"warm"`
	Dur       time.Duration `json:"dur"`
	Ops       int64         `json:"ops,omitempty"` // by count instead (window.ops)
	// Path is where "profile-start" writes the child's CPU profile
	// until "profile-stop".
	Path string `json:"path,omitempty"`
}

type childResponse struct {
	Rate  float64 `json:"rate"`
	Total int64   `json:"total"`
	Err   string  `json:"err,omitempty"`
}

func childMain() int {
	var spec childSpec
	if err := json.Unmarshal([]byte(os.Getenv(envChild)), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "bench child: bad spec:", err)
		return 2
	}
	ctx := context.Background()
	ks, err := pkcs11.Open(ctx, pkcs11.Config{
		ModulePath: spec.Module, TokenLabel: spec.Label, PIN: spec.PIN,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child: open token:", err)
		return 1
	}
	defer ks.Close()
	signers := map[string]crypto.Signer{}
	for _, k := range spec.Keys {
		pub, err := x509.ParsePKIXPublicKey(k.PublicDER)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child: public key:", err)
			return 1
		}
		s, err := ks.Signer(ctx, keystore.KeyRef{ID: k.CKAID, Algorithm: keystore.Algorithm(k.Algorithm), Public: pub})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child: signer:", err)
			return 1
		}
		signers[k.Algorithm] = s
	}
	if spec.FloorSocket != "" {
		tables, err := edcheck.NewVerifier(spec.FloorVerifyKey)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child: floor verify key:", err)
			return 1
		}
		// The floor server runs with signerd's scheduler setting, as with
		// its transport tuning (serveFloor).
		server.TuneScheduler()
		stop, err := serveFloor(spec.FloorSocket, &floorServer{signers: signers, verifyKey: spec.FloorVerifyKey, tables: tables})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child: floor server:", err)
			return 1
		}
		defer stop()
	}
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req childRequest
		var resp childResponse
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			resp.Err = err.Error()
		} else if req.Op == "profile-start" || req.Op == "profile-stop" {
			if err := childProfile(req); err != nil {
				resp.Err = err.Error()
			}
		} else {
			st, err := childRun(req, signers)
			resp.Rate, resp.Total = st.rate, st.total
			if err != nil {
				resp.Err = err.Error()
			}
		}
		if err := out.Encode(resp); err != nil {
			return 1
		}
	}
	return 0
}

var childSeq atomic.Uint64

// childProfileFile is the CPU profile being written, between
// "profile-start" and "profile-stop".
var childProfileFile *os.File

// childProfile starts or stops the child's CPU profile.
func childProfile(req childRequest) error {
	if req.Op == "profile-stop" {
		if childProfileFile == nil {
			return errors.New("no profile running")
		}
		pprof.StopCPUProfile()
		err := childProfileFile.Close()
		childProfileFile = nil
		return err
	}
	if childProfileFile != nil {
		return errors.New("a profile is running")
	}
	f, err := os.Create(req.Path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return err
	}
	childProfileFile = f
	return nil
}

func childRun(req childRequest, signers map[string]crypto.Signer) (loadStats, error) {
	w := window{warm: req.Warm, dur: req.Dur, ops: req.Ops}
	switch req.Op {
	case "sign":
		s, ok := signers[req.Algorithm]
		if !ok {
			return loadStats{}, fmt.Errorf("no %s key", req.Algorithm)
		}
		alg := keystore.Algorithm(req.Algorithm)
		return closedLoop(req.Workers, w, func(int) error {
			// A fresh SHA-256 digest per signature, as the daemon gets:
			// Ed25519 signs it as the message, ECDSA as the digest.
			d := sha256.Sum256(binary.BigEndian.AppendUint64(nil, childSeq.Add(1)))
			var err error
			if alg == keystore.Ed25519 {
				_, err = s.Sign(nil, d[:], crypto.Hash(0))
			} else {
				_, err = s.Sign(nil, d[:], crypto.SHA256)
			}
			return err
		})
	case "verify":
		docs, err := verifyCorpus(256)
		if err != nil {
			return loadStats{}, err
		}
		return closedLoop(req.Workers, w, func(int) error {
			c := docs[childSeq.Add(1)%uint64(len(docs))]
			sig, err := pkgsig.Parse(c.doc)
			if err != nil {
				return err
			}
			return pkgsig.Check(c.digest, sig, c.pub)
		})
	}
	return loadStats{}, fmt.Errorf("unknown op %q", req.Op)
}

// floorServer is the least a gRPC signing server can do: SignerService.Sign
// that hands the digest to the HSM and returns the signature — no checks,
// no verification of the result, no record, no audit, no authorization,
// on signerd's own transport tuning. Its rate, driven by the same clients
// as the daemon, is the best any gRPC daemon could reach on this machine
// with this HSM: the daemon's ratio to the in-process ceiling cannot
// exceed the floor server's.
type floorServer struct {
	signerv1.UnimplementedSignerServiceServer
	signers   map[string]crypto.Signer
	verifyKey ed25519.PublicKey
	// tables checks signatures by verifyKey as signerd's Verify does for
	// a key that verifies often (edcheck), for calls with org
	// floorTablesOrg.
	tables *edcheck.Verifier
}

// floorTablesOrg asks the floor server's Verify to check on tables.
const floorTablesOrg = "floor-tables"

// Verify is the floor of Verify: parse the document and check it against
// the one key, as the in-process verification ceiling does per call
// (crypto/ed25519), or, for org floorTablesOrg, on the key's tables as
// signerd does.
func (f *floorServer) Verify(_ context.Context, req *signerv1.VerifyRequest) (*signerv1.VerifyResponse, error) {
	var digest [pkgsig.DigestSize]byte
	copy(digest[:], req.GetDigest())
	sig, err := pkgsig.Parse(req.GetSignatureDocument())
	switch {
	case err != nil:
	case req.GetOrg() != floorTablesOrg:
		err = pkgsig.Check(digest, sig, f.verifyKey)
	case sig.Digest != digest || !f.tables.Verify(digest[:], sig.Sig):
		err = errors.New("tampered or invalid")
	}
	if err != nil {
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	return &signerv1.VerifyResponse{Verified: true}, nil
}

func (f *floorServer) Sign(_ context.Context, req *signerv1.SignRequest) (*signerv1.SignResponse, error) {
	var (
		sig []byte
		err error
	)
	switch req.GetKeyName() {
	case keyEd:
		sig, err = f.signers[string(keystore.Ed25519)].Sign(nil, req.GetDigest(), crypto.Hash(0))
	case keyEC:
		sig, err = f.signers[string(keystore.ECDSAP256)].Sign(nil, req.GetDigest(), crypto.SHA256)
	default:
		return nil, status.Errorf(codes.NotFound, "no key %q", req.GetKeyName())
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &signerv1.SignResponse{Signature: sig}, nil
}

// SignBatch is the floor of the streaming RPC: up to 128 items in flight
// at once (signerd's window), answered in order, nothing else. (At 64 its
// rate was the same within this machine's spread: 3,167–3,583 against
// 3,250–3,333 signatures/s, alternated twice.)
func (f *floorServer) SignBatch(stream signerv1.SignerService_SignBatchServer) error {
	const window = 128
	pending := make(chan chan *signerv1.SignBatchResponse, window)
	sendErr := make(chan error, 1)
	go func() {
		var err error
		for ch := range pending {
			r := <-ch
			if err == nil {
				err = stream.Send(r)
			}
		}
		sendErr <- err
	}()
	var err error
	for {
		var req *signerv1.SignBatchRequest
		if req, err = stream.Recv(); err != nil {
			break
		}
		ch := make(chan *signerv1.SignBatchResponse, 1)
		pending <- ch // blocks while window items are in flight
		go func() {
			resp, err := f.Sign(stream.Context(), req.GetRequest())
			if err != nil {
				ch <- &signerv1.SignBatchResponse{Error: &signerv1.BatchItemError{Code: int32(codes.Internal), Message: err.Error()}}
				return
			}
			ch <- &signerv1.SignBatchResponse{Response: resp}
		}()
	}
	close(pending)
	if serr := <-sendErr; serr != nil {
		return serr
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// serveFloor starts the floor server on a Unix socket.
func serveFloor(socket string, f *floorServer) (stop func(), err error) {
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	gs := grpc.NewServer(server.TransportTuning(1 << 20)...)
	signerv1.RegisterSignerServiceServer(gs, f)
	go func() { _ = gs.Serve(l) }()
	return gs.Stop, nil
}

// verifyItem is a Cloacina document with what verifies it.
type verifyItem struct {
	digest [pkgsig.DigestSize]byte
	doc    []byte
	pub    ed25519.PublicKey
}

// verifyCorpus makes n signed documents with an in-memory key: verifying
// costs the same whatever key signed.
func verifyCorpus(n int) ([]verifyItem, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	items := make([]verifyItem, n)
	for i := range items {
		d := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		sig := ed25519.Sign(priv, d[:])
		items[i] = verifyItem{digest: d, doc: pkgsig.NewDocument(d, pub, sig, time.Now()).Encode(), pub: pub}
	}
	return items, nil
}

// inproc is the parent's handle on the child.
type inproc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Scanner
	stderr *syncBuffer
}

// startInproc starts the child on the daemon's token with the daemon's keys.
func startInproc(t *testing.T, d *daemon, keys []childKey, floorSocket string, verifyKey ed25519.PublicKey) *inproc {
	t.Helper()
	spec, err := json.Marshal(childSpec{Module: d.tok.ModulePath, Label: d.tok.Label, PIN: d.tok.PIN, Keys: keys, FloorSocket: floorSocket, FloorVerifyKey: verifyKey})
	if err != nil {
		t.Fatal(err)
	}
	p := &inproc{stderr: &syncBuffer{}}
	p.cmd = exec.Command(os.Args[0])
	p.cmd.Env = append(os.Environ(), envChild+"="+string(spec), "SOFTHSM2_CONF="+d.tok.ConfPath)
	p.cmd.Stderr = p.stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.out = bufio.NewScanner(stdout)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("in-process worker: %v\n%s", err, p.stderr.String())
			}
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			t.Errorf("in-process worker did not exit\n%s", p.stderr.String())
		}
	})
	return p
}

// do runs one measurement in the child.
func (p *inproc) do(req childRequest) (childResponse, error) {
	b, _ := json.Marshal(req)
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		return childResponse{}, fmt.Errorf("in-process worker: %v\n%s", err, p.stderr.String())
	}
	if !p.out.Scan() {
		return childResponse{}, fmt.Errorf("in-process worker died: %v\n%s", p.out.Err(), p.stderr.String())
	}
	var resp childResponse
	if err := json.Unmarshal(p.out.Bytes(), &resp); err != nil {
		return resp, err
	}
	if resp.Err != "" {
		return resp, errors.New("in-process worker: " + resp.Err)
	}
	return resp, nil
}

// verifyWorkers saturates the machine's cores with pure-Go verification.
func verifyWorkers() int { return runtime.GOMAXPROCS(0) }
