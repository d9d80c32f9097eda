package server

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/faultguard"
	"github.com/signerd/signerd/internal/service"
)

// batchWindow is how many items of one SignBatch stream queue behind the
// one being answered (with the one the reader holds, batchWindow+2 are
// received and unanswered). Several in flight let the HSM pipeline and,
// above all, let the store's group commit put many signatures in one
// fsync. An item stays queued until it is answered, so the window holds
// the items in the HSM and those waiting for a commit: at 64, a commit's
// wait left the HSM idle (one stream, 2 cores, alternated twice:
// 2,188–2,210 signatures/s and 12.8 per commit at 64, 2,554–2,573 and
// 21.4 at 128, no better at 256). Memory per stream is bounded by the
// window and by the peer's request budget, to which every item is charged
// until it is signed; the service's HSM semaphore bounds HSM load across
// all callers.
const batchWindow = 128

// SignBatch implements signerv1.SignerServiceServer: items are signed
// concurrently (batchWindow queued behind the one being answered) and
// answered strictly in request order.
func (s *signerServer) SignBatch(stream signerv1.SignerService_SignBatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	id, _ := IdentityFrom(ctx)

	type item struct {
		done chan struct{}
		out  *signerv1.SignBatchResponse
	}
	pending := make(chan *item, batchWindow)
	recvErr := make(chan error, 1)
	workers := batchItems()
	go func() {
		defer close(pending)
		for {
			req, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				recvErr <- err
				return
			}
			it := &item{done: make(chan struct{})}
			select {
			case pending <- it:
			case <-ctx.Done():
				recvErr <- ctx.Err()
				return
			}
			// Each item is held to the unary Sign's request limit and
			// charged to the peer's budget until it is signed.
			n, err := s.admitItem(ctx, req)
			if err != nil {
				it.out = itemError(ctx, s.log, err)
				close(it.done)
				continue
			}
			r := req.GetRequest()
			workers.run(func() {
				defer close(it.done)
				defer ChargeRequestBytes(ctx, -n) //nolint:errcheck // giving back never fails
				it.out = s.signItemGuarded(ctx, id, r)
			})
		}
	}()
	for it := range pending {
		<-it.done
		if err := stream.Send(it.out); err != nil {
			return err // cancel() stops the reader; items in flight finish and stay recorded
		}
	}
	return <-recvErr
}

// signItemGuarded is signItem on a worker goroutine, where the stream
// interceptor's recovery does not reach: a fault in the map of a damaged
// database file (read when the signer cache misses), or any panic, fails
// the item INTERNAL, logged with its stack, instead of ending the process.
func (s *signerServer) signItemGuarded(ctx context.Context, id Identity, r *signerv1.SignRequest) (out *signerv1.SignBatchResponse) {
	if err := faultguard.Run(ctx, s.log, "SignBatch item", func() error {
		out = s.signItem(ctx, id, r)
		return nil
	}); err != nil {
		out = itemError(ctx, s.log, err)
	}
	return out
}

// signItem authorizes and signs one batch item, turning a failure into an
// item error with the code and reason the unary Sign would have returned.
func (s *signerServer) signItem(ctx context.Context, id Identity, r *signerv1.SignRequest) *signerv1.SignBatchResponse {
	if r == nil {
		r = &signerv1.SignRequest{}
	}
	// The peer as it is now (a TLS certificate expired or its CA removed
	// since the stream opened ends it), then the policy in force.
	err := recheckPeer(ctx)
	if err == nil && s.authz != nil {
		if err = s.authz.Authorize(ctx, id, signerv1.SignerService_Sign_FullMethodName, r); err != nil && s.denials != nil {
			s.denials.RecordDenial(ctx, signerv1.SignerService_SignBatch_FullMethodName, err.Error())
		}
	}
	if err == nil {
		var out service.SignOutput
		out, err = s.svc.Sign(ctx, service.SignInput{KeyName: r.GetKeyName(), Digest: r.GetDigest(), ArtifactName: r.GetArtifactName()})
		if err == nil {
			return &signerv1.SignBatchResponse{Response: signResponse(out)}
		}
	}
	return itemError(ctx, s.log, err)
}

// admitItem refuses an item larger than a unary Sign request may be and
// charges the rest (the request the item keeps) to the call's share of the
// peer's budget, returning the bytes charged.
func (s *signerServer) admitItem(ctx context.Context, req *signerv1.SignBatchRequest) (int, error) {
	n := proto.Size(req.GetRequest())
	if limit := methodLimit(signerv1.SignerService_Sign_FullMethodName, s.maxRecv); n > limit {
		return 0, status.Errorf(codes.ResourceExhausted, "item is %d bytes; %s accepts at most %d per item", n, signerv1.SignerService_SignBatch_FullMethodName, limit)
	}
	if err := ChargeRequestBytes(ctx, n); err != nil {
		return 0, err
	}
	return n, nil
}

// itemError is err as a batch item's error, with the code and reason the
// unary call would have returned.
func itemError(ctx context.Context, log *slog.Logger, err error) *signerv1.SignBatchResponse {
	st := status.Convert(ToStatus(ctx, log, err))
	item := &signerv1.BatchItemError{Code: int32(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			item.Reason = info.GetReason()
		}
	}
	return &signerv1.SignBatchResponse{Error: item}
}
