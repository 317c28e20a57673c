/*
 * Batched I/O on a TUN device, which has no recvmmsg/sendmmsg of its own: one call from JavaScript reads or writes a
 * whole batch, so the dataplane crosses the FFI once per batch instead of once per packet (docs/architecture.md).
 * Loaded with koffi by src/sys/batchio.ts; every pointer is a native address into WebAssembly memory.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/uio.h>
#include <unistd.h>

/*
 * Reads packets from a non-blocking fd until it has none left (EAGAIN) or n are read: packet i lands at
 * base + i * stride + headroom, at most stride - headroom bytes, and its length goes to lens[i]. Returns how many were
 * read, or -errno when the first read fails; a failure after some packets ends the batch (the next call reports it).
 */
int weftio_read_batch(int fd, uintptr_t base, uint32_t stride, uint32_t headroom, uint32_t *lens, int n)
{
	size_t room = stride > headroom ? (size_t)stride - headroom : 0;
	int i = 0;

	while (i < n) {
		ssize_t r = read(fd, (void *)(base + (size_t)i * stride + headroom), room);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || i > 0)
				break;
			return -errno;
		}
		if (r == 0)
			break;
		lens[i++] = (uint32_t)r;
	}
	return i;
}

/*
 * Writes n packets with one writev each: packet k is the next counts[k] iovecs of iov. Returns how many were written
 * whole; every other packet (an error, or a short write) is counted in *failed, and the errno of the last error goes to
 * *last_errno (0 when none, and for a short write).
 */
int weftio_write_batch(int fd, const struct iovec *iov, const uint32_t *counts, int n, uint32_t *failed, int32_t *last_errno)
{
	int ok = 0;

	*failed = 0;
	*last_errno = 0;
	for (int k = 0; k < n; k++) {
		int c = (int)counts[k];
		size_t want = 0;
		ssize_t r;

		for (int j = 0; j < c; j++)
			want += iov[j].iov_len;
		do
			r = writev(fd, iov, c);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			*last_errno = errno;
		if (r >= 0 && (size_t)r == want)
			ok++;
		else
			(*failed)++;
		iov += c;
	}
	return ok;
}
