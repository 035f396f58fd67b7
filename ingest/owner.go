package ingest

import (
	"os/user"
	"strconv"

	"github.com/fleetmeter/fleetmeter/storage"
)

// localUser is the human behind Claude Code and Codex calls: the local
// account that ran them, which owns the transcript file ("unix:ubuntu").
// OpenClaw calls have their sender instead.
type localUser struct {
	user, label string
}

// attribute gives u the local user when it has no user of its own.
func (o localUser) attribute(u *storage.Usage) {
	if o.user != "" && u.User == "" {
		u.User, u.UserLabel = o.user, o.label
	}
}

// ownerOf is the account that owns a file, by name when the passwd
// database knows the uid, else by number. Looked up once per uid.
func (in *Ingester) ownerOf(uid uint32) localUser {
	in.mu.Lock()
	defer in.mu.Unlock()
	if o, ok := in.owners[uid]; ok {
		return o
	}
	name := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(name); err == nil && u.Username != "" {
		name = u.Username
	}
	o := localUser{user: "unix:" + name, label: name}
	if in.owners == nil {
		in.owners = map[uint32]localUser{}
	}
	in.owners[uid] = o
	return o
}
