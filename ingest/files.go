package ingest

import (
	"io"
	"os"
	"syscall"
)

// transcriptFile is an open transcript.
type transcriptFile interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
}

// openFile opens a transcript to read. os.Open would register the file
// with the runtime's poller first (four fcntl and an epoll_ctl, a fifth
// of what reading a small file costs), for nothing: a regular file never
// blocks. A one-shot read, which trusts the plan's stat, reads the bare
// descriptor (open, read, close: a fleet of small files pays three system
// calls a file); the daemon stats the file it opened (os.NewFile, which
// adds one fcntl), since it may have been replaced since the plan.
func openFile(path string, stat bool) (transcriptFile, os.FileInfo, error) {
	var fd int
	for {
		var err error
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		break
	}
	if !stat {
		return rawFile(fd), nil, nil
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// rawFile reads a descriptor with plain system calls.
type rawFile int

func (f rawFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(int(f), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// ReadAt reads len(p) bytes at off, or fewer and an error (io.EOF at the
// end), as io.ReaderAt wants.
func (f rawFile) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := syscall.Pread(int(f), p[done:], off+int64(done))
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return done, err
		case n == 0:
			return done, io.EOF
		}
		done += n
	}
	return done, nil
}

func (f rawFile) Seek(off int64, whence int) (int64, error) { return syscall.Seek(int(f), off, whence) }

func (f rawFile) Close() error { return syscall.Close(int(f)) }
