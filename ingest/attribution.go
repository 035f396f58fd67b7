package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
)

// senderOf finds who sent a user message: the provenance of system and
// inter-session turns, else OpenClaw's "Sender (untrusted metadata)" block,
// else the sender_id of its "Conversation info" block, else an old
// one-line envelope. blocks parses the small JSON blocks (msg belongs to
// another parser, still in use).
func senderOf(msg *fastjson.Value, blocks *fastjson.Parser) sender {
	switch string(msg.GetStringBytes("provenance", "kind")) {
	case "internal_system", "inter_session":
		return sender{System: true}
	}
	return senderOfText(messageText(msg), blocks)
}

// senderOfText is senderOf for a message without provenance, from its text.
func senderOfText(text []byte, blocks *fastjson.Parser) sender {
	if block := fencedJSONAfter(text, "Sender (untrusted metadata):"); block != nil {
		if v, err := blocks.ParseBytes(block); err == nil {
			id := idString(v.Get("id"))
			if id == "" {
				id = firstNonEmpty(string(v.GetStringBytes("e164")), string(v.GetStringBytes("username")))
			}
			if id != "" {
				return sender{ID: id, Label: firstNonEmpty(string(v.GetStringBytes("label")), string(v.GetStringBytes("name")), string(v.GetStringBytes("username")))}
			}
		}
	}
	if block := fencedJSONAfter(text, "Conversation info (untrusted metadata):"); block != nil {
		if v, err := blocks.ParseBytes(block); err == nil {
			if id := idString(v.Get("sender_id")); id != "" {
				return sender{ID: id, Label: string(v.GetStringBytes("sender"))}
			}
		}
	}
	return envelopeSender(text)
}

// envelopeChannels are the channels of OpenClaw's one-line envelopes, as
// written (before Feb 2026 OpenClaw prefixed inbound text with
// "[<Channel> <from> …] text" instead of metadata blocks).
var envelopeChannels = map[string]string{
	"telegram": "telegram", "whatsapp": "whatsapp", "discord": "discord", "signal": "signal", "slack": "slack",
	"imessage": "imessage", "webchat": "webchat", "googlechat": "googlechat", "msteams": "msteams",
	"teams": "msteams", "matrix": "matrix", "line": "line", "irc": "irc", "mattermost": "mattermost",
}

// envelopeSender reads the sender of an old one-line envelope:
//
//	[Telegram Alice] text                      → telegram, Alice (a DM: the envelope names the peer)
//	[WebChat user1 mac-mini 10.0.0.5 2025-…] … → webchat, user1
//	[Discord Guild #general] Alice: text       → discord, Alice (a group: the body names the sender)
//	[Signal Signal Group id:123] Bob (42): …   → signal, 42 labelled Bob
//
// The names are display names, not ids (the envelope carries no ids for
// DMs); they are untrusted text like everything else here.
func envelopeSender(text []byte) sender {
	t := string(bytes.TrimLeft(text, " \n"))
	if !strings.HasPrefix(t, "[") {
		return sender{}
	}
	end := strings.IndexByte(t, ']')
	if end < 0 || end > 200 {
		return sender{}
	}
	fields := strings.Fields(t[1:end])
	if len(fields) < 2 {
		return sender{}
	}
	channel, ok := envelopeChannels[strings.ToLower(fields[0])]
	if !ok {
		return sender{}
	}
	head := fields[1:]
	body := strings.TrimLeft(t[end+1:], " ")
	if group := strings.Contains(t[1:end], "#") || strings.Contains(strings.ToLower(t[1:end]), "group") ||
		strings.Contains(strings.ToLower(t[1:end]), "guild"); group {
		// "Name (id): text" or "Name: text".
		colon := strings.Index(body, ": ")
		if colon <= 0 || colon > 100 {
			return sender{}
		}
		name := body[:colon]
		if open := strings.LastIndex(name, " ("); open > 0 && strings.HasSuffix(name, ")") {
			return sender{ID: channel + ":" + name[open+2:len(name)-1], Label: name[:open]}
		}
		return sender{ID: channel + ":" + name, Label: name}
	}
	// A DM: the peer is the words before host, address or time.
	var name []string
	for i, f := range head {
		if i > 0 && (channel == "webchat" || strings.ContainsAny(f, "0123456789") && strings.ContainsAny(f, ".:")) {
			break
		}
		name = append(name, f)
	}
	from := strings.Join(name, " ")
	return sender{ID: channel + ":" + from, Label: from}
}

// messageText is the text of a message: a string content, or the first
// text part of an array content (where OpenClaw puts its metadata blocks).
func messageText(msg *fastjson.Value) []byte {
	c := msg.Get("content")
	if c == nil {
		return nil
	}
	if c.Type() == fastjson.TypeString {
		b, _ := c.StringBytes()
		return b
	}
	for _, part := range c.GetArray() {
		if string(part.GetStringBytes("type")) == "text" {
			return part.GetStringBytes("text")
		}
	}
	return nil
}

// fencedJSONAfter returns the body of the ```json fence that follows label.
func fencedJSONAfter(text []byte, label string) []byte {
	i := bytes.Index(text, []byte(label))
	if i < 0 {
		return nil
	}
	rest := text[i+len(label):]
	open := bytes.Index(rest, []byte("```json"))
	if open < 0 || open > 16 {
		return nil
	}
	rest = rest[open+len("```json"):]
	end := bytes.Index(rest, []byte("```"))
	if end < 0 {
		return nil
	}
	return rest[:end]
}

// idString reads an id written as a string or a number.
func idString(v *fastjson.Value) string {
	if v == nil {
		return ""
	}
	switch v.Type() {
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeNumber:
		f, _ := v.Float64()
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// sessionMeta is what fleetmeter remembers of a session from OpenClaw's
// store. Archived sessions vanish from sessions.json, so it is kept in
// storage for as long as their transcripts may turn up.
type sessionMeta struct {
	Key        string `json:"key"`
	Channel    string `json:"channel,omitempty"`
	ChatType   string `json:"chat_type,omitempty"`
	OriginFrom string `json:"origin_from,omitempty"`
	Label      string `json:"label,omitempty"`
	// The sessions of CLI backends (Claude Code, Codex) this session ran
	// its turns in: their transcripts hold those calls in full.
	ClaudeCLI string `json:"claude_cli,omitempty"`
	CodexCLI  string `json:"codex_cli,omitempty"`
}

// readSessionsJSON reads <sessions>/sessions.json: session key → entry,
// returned by session id.
func readSessionsJSON(path string) (map[string]sessionMeta, error) {
	data, err := readRegular(path)
	if err != nil {
		return nil, err
	}
	var store map[string]json.RawMessage
	if err := json.Unmarshal(data, &store); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	out := make(map[string]sessionMeta, len(store))
	for key, raw := range store {
		var id struct {
			SessionID string `json:"sessionId"`
		}
		if json.Unmarshal(raw, &id) != nil || id.SessionID == "" {
			continue
		}
		out[id.SessionID] = entryMeta(key, raw)
	}
	return out, nil
}

// entryMeta reads one SessionEntry: a sessions.json value (JSONL era) or a
// session_nodes.entry_json (SQLite era), the same JSON in both.
func entryMeta(key string, entry []byte) sessionMeta {
	var e struct {
		ChatType    string `json:"chatType"`
		Channel     string `json:"channel"`
		LastChannel string `json:"lastChannel"`
		DisplayName string `json:"displayName"`
		Origin      struct {
			Provider string `json:"provider"`
			From     string `json:"from"`
			Label    string `json:"label"`
			ChatType string `json:"chatType"`
		} `json:"origin"`
		DeliveryContext struct {
			Channel string `json:"channel"`
		} `json:"deliveryContext"`
		ClaudeCLISessionID string         `json:"claudeCliSessionId"`
		CLISessionIDs      map[string]any `json:"cliSessionIds"`
		CLISessionBindings map[string]struct {
			SessionID string `json:"sessionId"`
		} `json:"cliSessionBindings"`
	}
	if json.Unmarshal(entry, &e) != nil {
		return sessionMeta{Key: key} // the key alone still attributes the session
	}
	cli := func(backend string) string {
		if b, ok := e.CLISessionBindings[backend]; ok && b.SessionID != "" {
			return b.SessionID
		}
		if id, ok := e.CLISessionIDs[backend].(string); ok {
			return id
		}
		return ""
	}
	return sessionMeta{
		Key:        key,
		Channel:    firstNonEmpty(e.Channel, e.Origin.Provider, e.LastChannel, e.DeliveryContext.Channel),
		ChatType:   firstNonEmpty(e.ChatType, e.Origin.ChatType),
		OriginFrom: e.Origin.From,
		Label:      firstNonEmpty(e.Origin.Label, e.DisplayName),
		ClaudeCLI:  firstNonEmpty(cli("claude-cli"), e.ClaudeCLISessionID),
		CodexCLI:   cli("codex-cli"),
	}
}

// keyInfo is what a session key says about its session.
type keyInfo struct {
	agent   string
	channel string
	peer    string // the DM peer, for per-peer DM scopes
	noHuman bool   // cron, heartbeat, sub-agent, hook: nobody is talking
}

// parseSessionKey reads OpenClaw's session key grammar:
//
//	agent:<id>:main | agent:<id>:direct:<peer> | agent:<id>:<channel>:direct:<peer>
//	agent:<id>:<channel>:<account>:direct:<peer> | agent:<id>:<channel>:group|channel|room:<id>
//	agent:<id>:cron:<job>[:run:<sid>] | agent:<id>:subagent:<uuid> | ...:heartbeat | agent:<id>:hook:<uuid>
//
// Older builds wrote "dm" where newer ones write "direct"; both are read.
func parseSessionKey(key string) keyInfo {
	parts := strings.Split(key, ":")
	var k keyInfo
	if len(parts) >= 2 && parts[0] == "agent" {
		k.agent = parts[1]
		parts = parts[2:]
	}
	for _, p := range parts {
		switch p {
		case "cron", "subagent", "heartbeat", "hook":
			k.noHuman = true
		}
	}
	for i, p := range parts {
		if (p == "direct" || p == "dm") && i+1 < len(parts) {
			k.peer = strings.Join(parts[i+1:], ":")
			if i >= 1 {
				k.channel = parts[0]
			}
			break
		}
		if (p == "group" || p == "channel" || p == "room") && i >= 1 {
			k.channel = parts[0]
			break
		}
	}
	return k
}

// attribution is the channel and user of one model call.
type attribution struct {
	channel, user, label string
}

// attribute decides who a call is for: nobody for cron, heartbeat,
// sub-agent and system turns; else the sender of the triggering message;
// else the session's DM peer or origin.
func attribute(meta sessionMeta, s sender) attribution {
	k := parseSessionKey(meta.Key)
	a := attribution{channel: firstNonEmpty(k.channel, meta.Channel)}
	if k.noHuman || s.System {
		return a
	}
	switch {
	case s.ID != "":
		a.user, a.label = qualify(a.channel, s.ID), s.Label
	case k.peer != "":
		a.user = qualify(a.channel, k.peer)
	case meta.OriginFrom != "" && (meta.ChatType == "" || meta.ChatType == "direct"):
		a.user, a.label = meta.OriginFrom, meta.Label
	}
	return a
}

// qualify makes "<channel>:<id>" unless id already names its channel.
func qualify(channel, id string) string {
	if channel == "" || strings.HasPrefix(id, channel+":") {
		return id
	}
	return channel + ":" + id
}
