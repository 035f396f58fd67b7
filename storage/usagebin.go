package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Ledger rows. Since schema 3 a row is a Usage in binary (below); rows
// written before are a Usage as encoding/json marshals it, and still
// decode (decodeUsage tells them apart by their first byte: '{' or
// usageBin). Binary rows are about half the size of JSON ones (a call of
// the 10k-files corpus: 372 → 186 bytes), and a cold ingest writes, and a
// report from the ledger reads, every byte of them.
//
// The layout, in this order:
//
//	usageBin (1 byte)
//	ts (varint)
//	source agent session_id session_key channel user user_label provider
//	model price_modifier corrected mirror_of cost_source dedupe_key
//	    (each a uvarint length, then the bytes as they are)
//	input output cache_read cache_write cache_write_1h reasoning
//	    web_search_requests web_fetch_requests (varints)
//	flags (1 byte: 1 sidechain, 2 a recorded cost follows the cost)
//	cost, recorded cost: a byte with a bit per field of Cost that is not
//	    +0 (Total first), then those float64s (8 bytes each, little endian)
//
// Strings keep their bytes (JSON rows turned invalid UTF-8 into U+FFFD),
// floats their bits. A value JSON cannot hold (NaN, ±Inf) is refused, as
// json.Marshal refused it.
const usageBin = 0x01

// Flags of a binary row.
const (
	usageSidechain   = 1
	usageHasRecorded = 2
)

var errBadRow = errors.New("storage: bad ledger row")

// appendUsageRow appends u's binary row to b.
func appendUsageRow(b []byte, u *Usage) ([]byte, error) {
	if err := finiteCost(&u.Cost); err != nil {
		return b, err
	}
	if u.Recorded != nil {
		if err := finiteCost(u.Recorded); err != nil {
			return b, err
		}
	}
	b = append(b, usageBin)
	b = binary.AppendVarint(b, u.TS)
	for _, s := range [...]string{u.Source, u.Agent, u.SessionID, u.SessionKey, u.Channel, u.User, u.UserLabel, u.Provider,
		u.Model, u.Modifier, u.Corrected, u.MirrorOf, u.CostSource, u.DedupeKey} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, n := range [...]int64{u.Input, u.Output, u.CacheRead, u.CacheWrite, u.CacheWrite1h, u.Reasoning, u.WebSearches, u.WebFetches} {
		b = binary.AppendVarint(b, n)
	}
	var flags byte
	if u.Sidechain {
		flags |= usageSidechain
	}
	if u.Recorded != nil {
		flags |= usageHasRecorded
	}
	b = append(b, flags)
	b = appendCost(b, &u.Cost)
	if u.Recorded != nil {
		b = appendCost(b, u.Recorded)
	}
	return b, nil
}

func finiteCost(c *Cost) error {
	for _, f := range c.fields() {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("storage: cost %v is not a number a ledger row holds", f)
		}
	}
	return nil
}

func (c *Cost) fields() [6]float64 {
	return [6]float64{c.Total, c.Input, c.Output, c.CacheRead, c.CacheWrite, c.Tools}
}

func appendCost(b []byte, c *Cost) []byte {
	f := c.fields()
	var mask byte
	for i, v := range f {
		if math.Float64bits(v) != 0 {
			mask |= 1 << i
		}
	}
	b = append(b, mask)
	for i, v := range f {
		if mask&(1<<i) != 0 {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	return b
}

// decodeUsage decodes a ledger row of either form into u (all of it:
// fields the row does not hold are zero).
func decodeUsage(v []byte, u *Usage) error {
	if len(v) > 0 && v[0] == '{' {
		*u = Usage{}
		return json.Unmarshal(v, u)
	}
	var r usageRow
	if err := r.parse(v); err != nil {
		return err
	}
	r.usage(u)
	return nil
}

// usageRow is a binary ledger row parsed in place: its strings are views
// into the row's bytes, valid while they are (a transaction, a scan).
type usageRow struct {
	ts int64
	// source, agent, session id, session key, channel, user, user label,
	// provider, model, modifier, corrected, mirror of, cost source, dedupe key
	str                                                                       [14][]byte
	input, output, cacheRead, cacheWrite, cacheWrite1h, reasoning, web, fetch int64
	sidechain, hasRecorded                                                    bool
	cost, recorded                                                            Cost
}

// Indexes of usageRow.str.
const (
	rowSource = iota
	rowAgent
	rowSessionID
	rowSessionKey
	rowChannel
	rowUser
	rowUserLabel
	rowProvider
	rowModel
	rowModifier
	rowCorrected
	rowMirrorOf
	rowCostSource
	rowDedupeKey
)

// parse reads a binary row, all of it: anything short, left over or
// unknown is an error, so a damaged page's bytes are not taken for a call.
func (r *usageRow) parse(v []byte) error {
	if len(v) == 0 || v[0] != usageBin {
		return errBadRow
	}
	p := v[1:]
	var ok bool
	if r.ts, p, ok = varint(p); !ok {
		return errBadRow
	}
	for i := range r.str {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return errBadRow
		}
		r.str[i], p = p[k:k+int(n):k+int(n)], p[k+int(n):]
	}
	for _, n := range [...]*int64{&r.input, &r.output, &r.cacheRead, &r.cacheWrite, &r.cacheWrite1h, &r.reasoning, &r.web, &r.fetch} {
		if *n, p, ok = varint(p); !ok {
			return errBadRow
		}
	}
	if len(p) == 0 || p[0]&^(usageSidechain|usageHasRecorded) != 0 {
		return errBadRow
	}
	r.sidechain, r.hasRecorded = p[0]&usageSidechain != 0, p[0]&usageHasRecorded != 0
	if p, ok = parseCost(p[1:], &r.cost); !ok {
		return errBadRow
	}
	r.recorded = Cost{}
	if r.hasRecorded {
		if p, ok = parseCost(p, &r.recorded); !ok {
			return errBadRow
		}
	}
	if len(p) != 0 {
		return errBadRow
	}
	return nil
}

func varint(p []byte) (int64, []byte, bool) {
	n, k := binary.Varint(p)
	if k <= 0 {
		return 0, p, false
	}
	return n, p[k:], true
}

func parseCost(p []byte, c *Cost) ([]byte, bool) {
	if len(p) == 0 || p[0]&^0x3f != 0 {
		return p, false
	}
	mask := p[0]
	p = p[1:]
	var f [6]float64
	for i := range f {
		if mask&(1<<i) == 0 {
			continue
		}
		if len(p) < 8 {
			return p, false
		}
		f[i] = math.Float64frombits(binary.LittleEndian.Uint64(p))
		if math.IsNaN(f[i]) || math.IsInf(f[i], 0) {
			return p, false
		}
		p = p[8:]
	}
	*c = Cost{Total: f[0], Input: f[1], Output: f[2], CacheRead: f[3], CacheWrite: f[4], Tools: f[5]}
	return p, true
}

// usage sets u to the row, strings copied.
func (r *usageRow) usage(u *Usage) {
	s := func(i int) string { return string(r.str[i]) }
	*u = Usage{
		TS: r.ts, Source: s(rowSource), Agent: s(rowAgent), SessionID: s(rowSessionID), SessionKey: s(rowSessionKey),
		Channel: s(rowChannel), User: s(rowUser), UserLabel: s(rowUserLabel), Provider: s(rowProvider), Model: s(rowModel),
		Input: r.input, Output: r.output, CacheRead: r.cacheRead, CacheWrite: r.cacheWrite, CacheWrite1h: r.cacheWrite1h,
		Reasoning: r.reasoning, WebSearches: r.web, WebFetches: r.fetch,
		Modifier: s(rowModifier), Corrected: s(rowCorrected), MirrorOf: s(rowMirrorOf), Sidechain: r.sidechain,
		Cost: r.cost, CostSource: s(rowCostSource), DedupeKey: s(rowDedupeKey),
	}
	if r.hasRecorded {
		rec := r.recorded
		u.Recorded = &rec
	}
}
