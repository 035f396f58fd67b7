package storage

import (
	"strings"
)

// The rules that decide what a record does to a ledger, in one place: the
// bbolt ledger (DB.Apply) and the in-memory tally of direct reports
// (rollup.Tally) both run ApplyRecord against their own RecordStore, so a
// report read straight from transcripts and a report from the database
// count the same calls.
//
//  1. Dedupe: one record per dedupe key. A larger copy of a known call
//     replaces it (Supersedes); a key whose record retention pruned stays
//     known, so a re-read transcript cannot count the call again.
//  2. Mirrors: a row that summarises a turn of another transcript
//     (Usage.MirrorOf, e.g. an OpenClaw claude-cli row) counts only while
//     that transcript's own calls are unknown. When the first call of the
//     fuller transcript arrives, its group is claimed and every mirror of
//     it leaves the ledger; mirrors arriving later are duplicates.
//  3. Users: a sender recorded without a channel ("123", from an archive or
//     fork whose session key is gone) is the same person as "telegram:123"
//     for the same source and agent, when that bare id names one channel
//     only. Records are moved to the qualified user whichever arrives first.

// RecordStore is what ApplyRecord needs from a ledger.
type RecordStore interface {
	// Lookup finds the record holding a dedupe key: live (returned), gone
	// (known but pruned or removed), or unknown.
	Lookup(dedupeKey string) (old *Usage, gone bool, err error)
	// Insert stores a new record: ledger row, dedupe key, rollups.
	Insert(u *Usage) error
	// Remove takes a live record out of the rollups and the ledger; its
	// dedupe key stays known (Lookup reports it gone).
	Remove(u *Usage) error
	// Claimed reports whether a mirror group's fuller transcript is known
	// (a group is "<kind>:<id>", e.g. "claude:<session id>"); Claim marks
	// it so and returns the live mirrors of the group.
	Claimed(group string) (bool, error)
	Claim(group string) ([]Usage, error)
	// IndexMirror remembers that u (stored) mirrors u.MirrorOf.
	IndexMirror(u *Usage) error
	// Alias returns the qualified user a bare id resolves to for a source
	// and agent: "" when none is known, AmbiguousUser when several are.
	Alias(source, agent, bare string) (string, error)
	SetAlias(source, agent, bare, user string) error
	// IndexBare remembers that u (stored) has a bare user; TakeBare returns
	// and forgets the live records with that bare id for source and agent.
	IndexBare(u *Usage) error
	TakeBare(source, agent, bare string) ([]Usage, error)
}

// AmbiguousUser is the alias of a bare id seen with more than one channel.
const AmbiguousUser = "\x00ambiguous"

// Outcome is what ApplyRecord did with a record.
type Outcome int

// Outcomes of ApplyRecord.
const (
	OutcomeDuplicate Outcome = iota // a known call, or a mirror of a known transcript
	OutcomeAdded
	OutcomeReplaced // a larger copy replaced the known one
)

// RecordResult is what ApplyRecord did: its outcome, and how many mirror
// records the call's transcript displaced.
type RecordResult struct {
	Outcome    Outcome
	Superseded int
}

// ApplyRecord applies one normalised record to s under the rules above.
func ApplyRecord(s RecordStore, u *Usage) (RecordResult, error) {
	var res RecordResult
	if u.MirrorOf != "" {
		if claimed, err := s.Claimed(u.MirrorOf); err != nil || claimed {
			return res, err // the fuller transcript has this turn
		}
	}
	old, gone, err := s.Lookup(u.DedupeKey)
	if err != nil || gone {
		return res, err
	}
	if err := resolveUser(s, u); err != nil {
		return res, err
	}
	res.Outcome = OutcomeAdded
	if old != nil {
		if !Supersedes(old, u) {
			res.Outcome = OutcomeDuplicate
			return res, nil
		}
		u.AdoptIdentity(old)
		if err := s.Remove(old); err != nil {
			return res, err
		}
		res.Outcome = OutcomeReplaced
	}
	if err := s.Insert(u); err != nil {
		return res, err
	}
	if u.MirrorOf != "" {
		if err := s.IndexMirror(u); err != nil {
			return res, err
		}
	}
	if err := indexUser(s, u); err != nil {
		return res, err
	}
	if group := claimOf(u); group != "" {
		claimed, err := s.Claimed(group)
		if err != nil || claimed {
			return res, err
		}
		mirrors, err := s.Claim(group)
		if err != nil {
			return res, err
		}
		for i := range mirrors {
			if err := s.Remove(&mirrors[i]); err != nil {
				return res, err
			}
		}
		res.Superseded = len(mirrors)
	}
	return res, nil
}

// claimOf is the mirror group a record's own transcript is: a Claude Code
// session is the fuller copy of OpenClaw's claude-cli rows for it, a Codex
// thread of codex-cli rows. The group string is the record's own
// "<source>:<session id>" and is built once per record.
func claimOf(u *Usage) string {
	if u.SessionID == "" || (u.Source != SourceClaude && u.Source != SourceCodex) {
		return ""
	}
	return u.Source + ":" + u.SessionID
}

// bareID splits a user into its channel and id: "telegram:123" → ("telegram",
// "123"); a bare "123" has no channel.
func bareID(user string) (channel, id string) {
	if i := strings.IndexByte(user, ':'); i >= 0 {
		return user[:i], user[i+1:]
	}
	return "", user
}

// resolveUser qualifies a bare user when its scope knows one channel for it.
func resolveUser(s RecordStore, u *Usage) error {
	if u.User == "" {
		return nil
	}
	if ch, _ := bareID(u.User); ch != "" {
		return nil
	}
	q, err := s.Alias(u.Source, u.Agent, u.User)
	if err == nil && q != "" && q != AmbiguousUser {
		u.User = q
	}
	return err
}

// indexUser keeps the alias table and the bare index after u was stored: a
// bare user is indexed to be moved later; a qualified one claims its bare
// id and moves the records stored under it.
func indexUser(s RecordStore, u *Usage) error {
	if u.User == "" {
		return nil
	}
	ch, id := bareID(u.User)
	if ch == "" {
		return s.IndexBare(u)
	}
	if id == "" || ch == "unix" {
		return nil
	}
	known, err := s.Alias(u.Source, u.Agent, id)
	switch {
	case err != nil:
		return err
	case known == u.User || known == AmbiguousUser:
		return nil
	case known != "":
		return s.SetAlias(u.Source, u.Agent, id, AmbiguousUser) // one id, two channels: no longer one person
	}
	if err := s.SetAlias(u.Source, u.Agent, id, u.User); err != nil {
		return err
	}
	bare, err := s.TakeBare(u.Source, u.Agent, id)
	if err != nil {
		return err
	}
	for i := range bare {
		r := bare[i]
		if err := s.Remove(&r); err != nil {
			return err
		}
		r.User = u.User
		if r.UserLabel == "" {
			r.UserLabel = u.UserLabel
		}
		if err := s.Insert(&r); err != nil {
			return err
		}
	}
	return nil
}
