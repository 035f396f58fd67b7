package ingest

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

// checkCursor fails unless c's stored form decodes to c, as its JSON form
// (cursors written before the binary form) does, and no cut of it decodes.
func checkCursor(t *testing.T, c *fileCursor) {
	t.Helper()
	v, err := encodeCursor(c)
	if err != nil {
		t.Fatal(err)
	}
	var got fileCursor
	if err := decodeCursor(v, &got); err != nil || !reflect.DeepEqual(&got, c) {
		t.Fatalf("cursor\n%+v\ndecodes to\n%+v (%v)", c, &got, err)
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON fileCursor
	if err := decodeCursor(js, &fromJSON); err != nil || !reflect.DeepEqual(&fromJSON, c) {
		t.Fatalf("JSON cursor\n%s\ndecodes to\n%+v (%v)", js, &fromJSON, err)
	}
	for i := range v {
		if decodeCursor(v[:i], &got) == nil {
			t.Fatalf("%+v: a cursor cut at %d of %d bytes decodes", c, i, len(v))
		}
	}
}

// TestCursorRoundTrip sets every field of a cursor in turn, nested ones
// included (found by reflection: a field added without its place in the
// binary form fails here), then all of them.
func TestCursorRoundTrip(t *testing.T) {
	checkCursor(t, &fileCursor{})
	base := fileCursor{Path: "/home/u/.openclaw/agents/main/sessions/s1.jsonl", Dev: 65024, Ino: 11542812, Size: 762,
		ModNano: 1796037058149757487, Offset: 762, Complete: true, HeadLen: 762, HeadHash: 3274098764719, TailLen: 762,
		TailHash: math.MaxUint64, Hash: "crc32c", Format: formatOpenClaw, Agent: "main", SessionID: "s1"}
	checkCursor(t, &base)
	var set func(v reflect.Value)
	set = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			v.SetString("x\x00é")
		case reflect.Int, reflect.Int64:
			v.SetInt(-7)
		case reflect.Uint64:
			v.SetUint(math.MaxUint64)
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
			set(v.Elem())
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() || v.Type().Field(i).Anonymous {
					set(v.Field(i))
				}
			}
		default:
			t.Fatalf("field of kind %s: teach appendCursor and this test", v.Kind())
		}
	}
	all := base
	ct := reflect.TypeFor[fileCursor]()
	for i := range ct.NumField() {
		c := base
		set(reflect.ValueOf(&c).Elem().Field(i))
		checkCursor(t, &c)
		set(reflect.ValueOf(&all).Elem().Field(i))
	}
	checkCursor(t, &all)
	if all.Codex == nil || all.Codex.LastCall == nil || all.Skipped == nil || all.Counted == nil || !all.Sender.System {
		t.Fatalf("not every part set: %+v", all)
	}
}

// FuzzCursor: any bytes given as a stored cursor decode or are refused,
// without a panic.
func FuzzCursor(f *testing.F) {
	v, _ := encodeCursor(&fileCursor{Path: "/p", Complete: true, Codex: &codexState{Model: "m"}})
	f.Add(v)
	f.Add([]byte(`{"path":"/p"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var c fileCursor
		if decodeCursor(raw, &c) == nil && raw[0] == cursorBin {
			again, err := encodeCursor(&c)
			var c2 fileCursor
			if err != nil || decodeCursor(again, &c2) != nil || !reflect.DeepEqual(&c, &c2) {
				t.Fatalf("%q decodes to %+v, which does not round-trip", raw, &c)
			}
		}
	})
}
