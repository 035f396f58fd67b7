package ingest

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// openFile opens a transcript to read, by its name in dir's descriptor
// (see dirHandle), as a bare descriptor: os.Open would register the file
// with the runtime's poller first (four fcntl and an epoll_ctl, a fifth of
// what reading a small file costs), for nothing: a regular file never
// blocks. O_NONBLOCK keeps a FIFO put under a transcript's name from
// blocking the open (a regular file ignores it); the caller's stat then
// leaves it alone. A file listed as a regular file, not a symlink, is
// opened without following one (follow false): a link put in its place
// since cannot lead the open to a device, whose driver may act on open.
func openFile(dir *dirHandle, path string, follow bool) (rawFile, error) {
	dirfd, name := dir.of(path)
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return rawFile(fd), nil
	}
}

// openDir opens a folder to list it. O_DIRECTORY refuses anything else
// before the open can block: a FIFO under a folder's name (an agent's
// sessions, a root's agents) would wait for a writer for ever, and a
// process blocked in open does not end on SIGTERM.
func openDir(dir string) (*os.File, error) {
	return os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
}

// readRegular reads a small file read whole (a session store), refusing
// anything but a regular file: opened without blocking, so a FIFO under
// its name is an error, not a wait for a writer.
func readRegular(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%v)", path, fi.Mode().Type())
	}
	return io.ReadAll(f)
}

// stat is the open file's fileStat.
func (f rawFile) stat() (fileStat, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstat(int(f), &st)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return fileStat{}, err
		}
		return statFrom(&st), nil
	}
}

// dirHandle is an open folder that files are opened and stat'ed in by
// their names: the kernel then resolves one path component, not every one
// of an absolute path (a third of what a stat costs, a tenth of an open,
// on a fleet's sessions folders). One handle follows a run of files, most
// in the same folder, and is closed at the end of the run: a folder
// removed and made again must not be read through an old descriptor.
type dirHandle struct {
	path string
	fd   int
	open bool // fd is path's descriptor
}

// of returns where to find path: its name in its folder's descriptor
// (opened when path is in another folder than the last), or the whole
// path when the folder cannot be opened by itself.
func (d *dirHandle) of(path string) (dirfd int, name string) {
	i := strings.LastIndexByte(path, os.PathSeparator)
	if i <= 0 {
		return unix.AT_FDCWD, path
	}
	if dir := path[:i]; d.path != dir {
		d.close()
		d.path = dir
		for {
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err == unix.EINTR {
				continue
			}
			d.fd, d.open = fd, err == nil
			break
		}
	}
	if !d.open {
		return unix.AT_FDCWD, path
	}
	return d.fd, path[i+1:]
}

func (d *dirHandle) close() {
	if d.open {
		unix.Close(d.fd)
	}
	*d = dirHandle{}
}

// fileStat is what the plan and the readers use of a file's stat.
type fileStat struct {
	dev, ino      uint64
	size, modNano int64
	uid           uint32
	regular, dir  bool
	ok            bool // false: no such file (it vanished), or no stat
}

// statAt stats path (following symlinks, as os.Stat) in dir.
func statAt(dir *dirHandle, path string) fileStat {
	dirfd, name := dir.of(path)
	var st unix.Stat_t
	var err error
	for {
		err = unix.Fstatat(dirfd, name, &st, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fileStat{}
	}
	return statFrom(&st)
}

func statFrom(st *unix.Stat_t) fileStat {
	mode := uint32(st.Mode) & unix.S_IFMT
	return fileStat{
		dev: uint64(st.Dev), ino: st.Ino, size: st.Size, modNano: st.Mtim.Nano(), uid: st.Uid,
		regular: mode == unix.S_IFREG, dir: mode == unix.S_IFDIR, ok: true,
	}
}

// statOf is fileStat of an os.FileInfo.
func statOf(fi os.FileInfo) fileStat {
	st := fileStat{size: fi.Size(), modNano: fi.ModTime().UnixNano(), regular: fi.Mode().IsRegular(), dir: fi.IsDir(), ok: true}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.dev, st.ino, st.uid = uint64(sys.Dev), sys.Ino, sys.Uid
	}
	return st
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
