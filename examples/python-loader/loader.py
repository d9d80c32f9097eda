#!/usr/bin/python3
"""A package loader in Python that asks signerd before it loads anything.

The safe-load pattern: open the file once, hash what that descriptor reads,
ask signerd's Verify, and load from the same descriptor (here it is read
back; a native loader would dlopen("/proc/self/fd/N")). A file renamed over
the original after the check is never what gets loaded. As the Go client's
WithSealedCopy does, the bytes are copied as they are hashed into a memory
file sealed against writes and resizing (a Linux memfd), and that copy is
what is loaded: whoever may write the file cannot change it in place after
the check either.

Needs Debian's python3-grpcio, and stubs generated from signerd's proto/
plus this directory's proto/ (see README.md, "Loading packages safely") on
PYTHONPATH.

    loader.py --socket /run/signerd/signerd.sock --org acme libfoo.so

Prints one JSON object. Exit codes are signctl's: 0 loaded, 1 refused
(the reason is signerd's ErrorInfo reason), 2 bad input, 3 signerd
unreachable or failing, 4 permission denied.
"""

import argparse
import fcntl
import hashlib
import json
import os
import stat
import sys

import grpc

from google.rpc import error_details_pb2, status_pb2
from signer.v1 import signer_service_pb2, signer_service_pb2_grpc

CHUNK = 1 << 20
MAX_SIGNATURE = 64 << 10  # what signerd and signctl read; larger is malformed


class LoadError(Exception):
    """A reason not to load, with the exit code signctl would use."""

    def __init__(self, exit_code, reason, message):
        super().__init__(message)
        self.exit_code = exit_code
        self.reason = reason


def error_info(err):
    """The ErrorInfo reason in a gRPC error's grpc-status-details-bin
    trailer (a serialized google.rpc.Status), and whether signerd marks it
    a verification refusal (metadata kind); ("", False) if there is none."""
    for key, value in err.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        st = status_pb2.Status.FromString(value)
        for detail in st.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return info.reason, info.metadata.get("kind") == "verification"
    return "", False


def hash_descriptor(fd, path, copy_to):
    """SHA-256 of the regular file open on fd, refusing one that changes
    size or modification time while it is read, or holds more or fewer
    bytes than its size says. Every byte hashed is also written to the
    descriptor copy_to."""
    before = os.fstat(fd)
    if not stat.S_ISREG(before.st_mode):
        raise LoadError(2, "NOT_REGULAR_FILE", f"{path} is not a regular file")
    h = hashlib.sha256()
    n = 0
    # One byte past the size is enough to know the file lied about it.
    while n <= before.st_size:
        chunk = os.read(fd, min(CHUNK, before.st_size + 1 - n))
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(copy_to, view):]
    after = os.fstat(fd)
    if n != before.st_size or after.st_size != before.st_size or after.st_mtime_ns != before.st_mtime_ns:
        raise LoadError(2, "FILE_CHANGED", f"{path} changed while it was hashed")
    return h.digest()


def sealed_copy(path):
    """A new memory file for the bytes that will be hashed, named after the
    package (memfd names are limited to 249 bytes)."""
    name = os.fsencode("signerd-verified:") + os.fsencode(os.path.basename(path))[:200]
    return os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)


def seal(fd):
    """Forbid every further change to the memory file (writes, growing,
    shrinking, new seals) and rewind it."""
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    os.lseek(fd, 0, os.SEEK_SET)


def sidecar_paths(path):
    """path + ".sig", then, for a name without an extension, Cloacina's own
    name for it (Rust's with_extension("{ext}.sig") gives "pkg..sig")."""
    name = os.path.basename(path)
    if name.rfind(".") <= 0 and name not in (".", ".."):
        return [path + ".sig", path + "..sig"]
    return [path + ".sig"]


def read_sidecar(path):
    """The detached signature (sidecar_paths), or None to let signerd use
    the signatures it recorded. As the Go client does: a FIFO or directory
    is refused without waiting on it, and an empty file is a malformed
    signature (on the wire an empty document means "none")."""
    for sig in sidecar_paths(path):
        try:
            fd = os.open(sig, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            break
        except FileNotFoundError:
            continue
        except OSError as e:
            raise LoadError(2, "UNREADABLE", f"{sig}: {e.strerror}") from e
    else:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LoadError(2, "NOT_REGULAR_FILE", f"{sig} is not a regular file")
        doc = b""
        while len(doc) <= MAX_SIGNATURE:
            chunk = os.read(fd, MAX_SIGNATURE + 1 - len(doc))
            if not chunk:
                break
            doc += chunk
    except OSError as e:
        raise LoadError(2, "UNREADABLE", f"{sig}: {e.strerror}") from e
    finally:
        os.close(fd)
    if len(doc) > MAX_SIGNATURE:
        raise LoadError(2, "MALFORMED_SIGNATURE", f"{sig} is larger than {MAX_SIGNATURE} bytes")
    if not doc:
        raise LoadError(2, "MALFORMED_SIGNATURE", f"{sig} is empty")
    return doc


def open_verified(stub, path, org, timeout=30):
    """Open path once, verify what that descriptor holds, and return
    (fd, VerifyResponse): fd is a sealed memory copy of exactly the bytes
    that were hashed, at offset 0. The caller loads from fd and closes it.
    Raises LoadError for every reason not to load."""
    try:
        # Refuse FIFOs and devices without opening them (opening one can
        # block, or act on the device): O_PATH resolves the path without
        # opening the file, and /proc/self/fd/N then opens that very inode,
        # so a FIFO or device swapped in after the check is not opened.
        where = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(where).st_mode):
                raise LoadError(2, "NOT_REGULAR_FILE", f"{path} is not a regular file")
            fd = os.open(f"/proc/self/fd/{where}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        finally:
            os.close(where)
    except OSError as e:  # a file this user may not read is bad input, as for signctl
        raise LoadError(2, "UNREADABLE", f"{path}: {e.strerror}") from e
    copy = -1
    try:
        copy = sealed_copy(path)
        digest = hash_descriptor(fd, path, copy)
        seal(copy)
    except OSError as e:
        if copy >= 0:
            os.close(copy)
        raise LoadError(2, "UNREADABLE", f"{path}: {e.strerror}") from e
    except BaseException:
        if copy >= 0:
            os.close(copy)
        raise
    finally:
        os.close(fd)
    try:
        request = signer_service_pb2.VerifyRequest(org=org, digest=digest)
        signature = read_sidecar(path)
        if signature is not None:  # None: signerd's records decide
            request.signature_document = signature
        try:
            response = stub.Verify(request, timeout=timeout)
        except grpc.RpcError as e:
            raise rpc_error(e) from e
        # Fail closed on an answer that is not about these bytes, or whose
        # outcome this loader does not know.
        if response.package_hash != digest.hex():
            raise LoadError(3, "INTERNAL", f"signerd answered for {response.package_hash!r}, not {digest.hex()}")
        if response.outcome not in (signer_service_pb2.VERIFY_OUTCOME_VERIFIED,
                                    signer_service_pb2.VERIFY_OUTCOME_UNSIGNED_ADMITTED):
            raise LoadError(3, "INTERNAL", f"signerd answered with outcome {response.outcome}, which this loader does not know")
        return copy, response
    except BaseException:
        os.close(copy)
        raise


def rpc_error(err):
    """A LoadError for a failed Verify, with signctl's exit code: 1 for a
    refusal (reason given), 2 for bad input (a malformed signature among
    them), 4 for a denial, 3 for signerd unreachable or failing."""
    reason, refusal = error_info(err)
    code = err.code()
    if code == grpc.StatusCode.UNAVAILABLE and not reason:
        denied = "Permission denied" in (err.details() or "")
        return LoadError(4 if denied else 3, "PERMISSION_DENIED" if denied else "UNAVAILABLE",
                         f"cannot reach signerd: {err.details()}")
    if refusal:
        return LoadError(2 if reason == "MALFORMED_SIGNATURE" else 1, reason, err.details())
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return LoadError(4, reason or code.name, err.details())
    if reason in ("KEY_MISMATCH", "KEY_NOT_IN_TOKEN"):  # signerd's state, not the input
        return LoadError(3, reason, err.details())
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED):
        return LoadError(2, reason or code.name, err.details())
    return LoadError(3, reason or code.name, err.details())


def main(argv=None):
    p = argparse.ArgumentParser(description="Verify a package with signerd, then load it from the verified descriptor.")
    p.add_argument("--socket", default=os.environ.get("SIGNCTL_SOCKET", "/run/signerd/signerd.sock"))
    p.add_argument("--org", required=True)
    p.add_argument("path")
    args = p.parse_args(argv)

    # An absolute path: gRPC reads "unix:relative" and "unix:/abs" alike,
    # but an absolute one does not depend on the working directory.
    channel = grpc.insecure_channel("unix:" + os.path.abspath(args.socket))
    stub = signer_service_pb2_grpc.SignerServiceStub(channel)
    try:
        fd, response = open_verified(stub, args.path, args.org)
    except LoadError as e:
        print(json.dumps({"loaded": False, "reason": e.reason, "message": str(e)}))
        return e.exit_code
    finally:
        channel.close()
    try:
        # "Load": read the verified descriptor through the path that names
        # it, as dlopen would.
        with open(f"/proc/self/fd/{fd}", "rb") as f:
            code = f.read()
    finally:
        os.close(fd)
    print(json.dumps({
        "loaded": True,
        "outcome": signer_service_pb2.VerifyOutcome.Name(response.outcome),
        "verified": response.verified,
        "signer_key_name": response.signer_key_name,
        "sha256": hashlib.sha256(code).hexdigest(),
        "bytes": len(code),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
