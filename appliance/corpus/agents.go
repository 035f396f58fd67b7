package corpus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Kinds of session key (reference §4).
const (
	kindMain     = iota // agent:<id>:main, all DMs share it
	kindTelegram        // agent:<id>:telegram:direct:<peer>
	kindWhatsApp        // agent:<id>:whatsapp:direct:<e164>
	kindDiscord         // agent:<id>:discord:group:<gid>
	kindCron            // agent:<id>:cron:<job>, no human sender
)

type person struct {
	name, username, telegramID, discordID, phone string
}

type agent struct {
	id        string
	cwd       string // as written in headers: the gateway host's workspace, not the output dir
	stateDir  string // likewise, for parentSession paths
	users     []person
	keys      []*sessKey
	primary   int // index into models
	secondary int
	thinking  string
	weight    float64 // relative activity
	threads   int     // forks made so far, to number thread keys
}

type sessKey struct {
	key     string
	kind    int
	weight  int       // relative chance of a new session on this key (0: never)
	peer    *person   // direct chats
	members []*person // group chats
	group   string    // group id
	label   string    // group label or cron job name
	parent  string    // forks only: the parent's session key (<parent>:thread:<n>)

	// Current transcript of the key, as sessions.json would show it.
	curID, curFile string
	updatedAt      time.Time
	lastUsage      usage
	lastModel      *model
}

var firstNames = []string{"Alice", "Bob", "Chen", "Dana", "Emeka", "Fatima", "Goran", "Hana", "Ivan", "Jules", "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya"}
var lastNames = []string{"Example", "Meyer", "Okafor", "Silva", "Tanaka", "Novak", "Haddad", "Larsen", "Moreau", "Kowalski"}
var agentNames = []string{"main", "ops", "research", "support", "family", "coder", "sales", "finance", "writer", "scheduler", "home", "devops"}
var cronJobs = []string{"daily-digest", "inbox-triage", "backup-check", "weekly-report", "price-watch"}
var groupLabels = []string{"#general", "#ops", "#dev", "#random", "#family", "#standup"}

func (g *gen) person() person {
	first := firstNames[g.rng.IntN(len(firstNames))]
	last := lastNames[g.rng.IntN(len(lastNames))]
	return person{
		name:       first + " " + last,
		username:   strings.ToLower(first) + "_" + strings.ToLower(last[:2]) + g.digits(2),
		telegramID: g.digits(9),
		discordID:  g.digits(18),
		phone:      "+1555" + g.digits(7),
	}
}

// AgentIDs are the ids of a corpus's first n agents, as Generate names them.
func AgentIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = agentID(i)
	}
	return out
}

func agentID(i int) string {
	if i < len(agentNames) {
		return agentNames[i]
	}
	return fmt.Sprintf("agent-%d", i)
}

// newAgents makes the fleet. Every choice is drawn in a fixed order from g.
func newAgents(g *gen, n int) []*agent {
	out := make([]*agent, n)
	for i := range out {
		id := agentID(i)
		a := &agent{
			id:       id,
			cwd:      "/home/openclaw/.openclaw/workspace-" + id,
			stateDir: "/home/openclaw/.openclaw",
			thinking: []string{"off", "low", "medium", "high"}[g.rng.IntN(4)],
			weight:   0.3 + 1.7*g.rng.Float64(),
		}
		if id == "main" {
			a.cwd = "/home/openclaw/.openclaw/workspace"
		}
		a.primary = g.pickModel()
		a.secondary = g.pickModel()
		for range g.between(2, 6) {
			p := g.person()
			a.users = append(a.users, p)
		}
		key := func(k *sessKey) { a.keys = append(a.keys, k) }
		key(&sessKey{key: "agent:" + id + ":main", kind: kindMain, weight: 4})
		for j := range g.between(1, 3) {
			p := &a.users[j%len(a.users)]
			key(&sessKey{key: "agent:" + id + ":telegram:direct:" + p.telegramID, kind: kindTelegram, weight: 2, peer: p})
		}
		if g.chance(0.5) {
			p := &a.users[len(a.users)-1]
			key(&sessKey{key: "agent:" + id + ":whatsapp:direct:" + p.phone, kind: kindWhatsApp, weight: 1, peer: p})
		}
		for range g.between(0, 2) {
			gid := g.digits(18)
			k := &sessKey{key: "agent:" + id + ":discord:group:" + gid, kind: kindDiscord, weight: 2, group: gid,
				label: groupLabels[g.rng.IntN(len(groupLabels))]}
			for j := range a.users {
				k.members = append(k.members, &a.users[j])
			}
			key(k)
		}
		for j := range g.between(0, 2) {
			job := cronJobs[(i+j)%len(cronJobs)]
			key(&sessKey{key: "agent:" + id + ":cron:" + job, kind: kindCron, weight: 1, label: job})
		}
		out[i] = a
	}
	return out
}

func (g *gen) pickModel() int {
	total := 0
	for _, m := range models {
		total += m.weight
	}
	r := g.rng.IntN(total)
	for i, m := range models {
		if r < m.weight {
			return i
		}
		r -= m.weight
	}
	return 0
}

func (a *agent) pickKey(g *gen) *sessKey {
	total := 0
	for _, k := range a.keys {
		total += k.weight
	}
	r := g.rng.IntN(total)
	for _, k := range a.keys {
		if r < k.weight {
			return k
		}
		r -= k.weight
	}
	return a.keys[0]
}

// userText is a user turn as OpenClaw stores it: channel turns begin with
// the "Conversation info" and "Sender" untrusted-metadata blocks
// (src/auto-reply/reply/inbound-meta.ts); cron turns are a bare prompt.
func (k *sessKey) userText(g *gen, a *agent, at time.Time, body string) string {
	if k.kind == kindCron {
		return "[cron:" + k.label + "] " + body
	}
	var p *person
	switch {
	case k.peer != nil:
		p = k.peer
	case len(k.members) > 0:
		p = k.members[g.rng.IntN(len(k.members))]
	default:
		p = &a.users[g.rng.IntN(len(a.users))]
	}
	senderID := p.telegramID
	if k.kind == kindDiscord {
		senderID = p.discordID
	} else if k.kind == kindWhatsApp {
		senderID = p.phone
	}
	var b strings.Builder
	b.WriteString("Conversation info (untrusted metadata):\n```json\n{\n")
	fmt.Fprintf(&b, "  \"message_id\": %q,\n", g.digits(4))
	fmt.Fprintf(&b, "  \"sender_id\": %q,\n", senderID)
	if k.kind == kindDiscord {
		fmt.Fprintf(&b, "  \"conversation_label\": %q,\n", "Guild "+k.label+" channel id:"+k.group)
	}
	fmt.Fprintf(&b, "  \"sender\": %q,\n", p.name)
	fmt.Fprintf(&b, "  \"timestamp\": %q", at.UTC().Format("Mon 2006-01-02 15:04")+" UTC")
	if k.kind == kindDiscord {
		fmt.Fprintf(&b, ",\n  \"group_subject\": %q,\n  \"is_group_chat\": true,\n  \"was_mentioned\": true", k.label)
	}
	b.WriteString("\n}\n```\n\nSender (untrusted metadata):\n```json\n{\n")
	fmt.Fprintf(&b, "  \"label\": %q,\n", p.name+" (@"+p.username+")")
	fmt.Fprintf(&b, "  \"id\": %q,\n", senderID)
	fmt.Fprintf(&b, "  \"name\": %q,\n", p.name)
	fmt.Fprintf(&b, "  \"username\": %q\n}\n```\n\n", p.username)
	b.WriteString(body)
	return b.String()
}

// storeEntry is one sessions.json value (SessionEntry, reference §2.3),
// fields in the order OpenClaw tends to write them.
type storeEntry struct {
	SessionID        string       `json:"sessionId"`
	UpdatedAt        int64        `json:"updatedAt"`
	SessionFile      string       `json:"sessionFile"`
	ChatType         string       `json:"chatType"`
	Channel          string       `json:"channel,omitempty"`
	GroupID          string       `json:"groupId,omitempty"`
	Origin           *storeOrigin `json:"origin,omitempty"`
	LastChannel      string       `json:"lastChannel,omitempty"`
	ModelProvider    string       `json:"modelProvider,omitempty"`
	Model            string       `json:"model,omitempty"`
	ParentSessionKey string       `json:"parentSessionKey,omitempty"`
	ForkedFromParent bool         `json:"forkedFromParent,omitempty"`
	// Last-run snapshots, not usage totals: an ingester that sums these
	// instead of reading transcripts gets the wrong answer.
	InputTokens  int64 `json:"inputTokens"`
	OutputTokens int64 `json:"outputTokens"`
	CacheRead    int64 `json:"cacheRead"`
	CacheWrite   int64 `json:"cacheWrite"`
}

type storeOrigin struct {
	Provider string `json:"provider"`
	From     string `json:"from,omitempty"`
	ChatType string `json:"chatType"`
	Label    string `json:"label"`
}

func (k *sessKey) entry(a *agent) storeEntry {
	e := storeEntry{
		SessionID:    k.curID,
		UpdatedAt:    k.updatedAt.UnixMilli(),
		SessionFile:  k.curFile,
		ChatType:     "direct",
		InputTokens:  k.lastUsage.input,
		OutputTokens: k.lastUsage.output,
		CacheRead:    k.lastUsage.cacheRead,
		CacheWrite:   k.lastUsage.cacheWrite,
	}
	if k.lastModel != nil {
		e.ModelProvider, e.Model = k.lastModel.provider, k.lastModel.id
	}
	p := k.peer
	if p == nil && len(a.users) > 0 {
		p = &a.users[0]
	}
	switch k.kind {
	case kindMain, kindTelegram:
		e.Channel = "telegram"
		e.Origin = &storeOrigin{Provider: "telegram", From: "telegram:" + p.telegramID, ChatType: "direct", Label: p.name}
	case kindWhatsApp:
		e.Channel = "whatsapp"
		e.Origin = &storeOrigin{Provider: "whatsapp", From: "whatsapp:" + p.phone, ChatType: "direct", Label: p.name}
	case kindDiscord:
		e.ChatType, e.Channel, e.GroupID = "group", "discord", k.group
		e.Origin = &storeOrigin{Provider: "discord", From: "discord:" + k.group, ChatType: "group", Label: k.label}
	case kindCron:
		e.Channel = "cron"
		e.Origin = &storeOrigin{Provider: "cron", ChatType: "direct", Label: "cron: " + k.label}
	}
	e.LastChannel = e.Channel
	if k.parent != "" {
		e.ParentSessionKey, e.ForkedFromParent = k.parent, true
	}
	return e
}

// storeJSON renders sessions.json: pretty-printed with 2 spaces like
// OpenClaw's writeTextAtomic, keys sorted (encoding/json sorts map keys),
// only keys that have a transcript.
func (a *agent) storeJSON() ([]byte, error) {
	m := map[string]storeEntry{}
	for _, k := range a.keys {
		if k.curID != "" {
			m[k.key] = k.entry(a)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode sessions.json for %s: %w", a.id, err)
	}
	return buf.Bytes(), nil
}

// slot is one planned session start.
type slot struct {
	at    time.Time
	agent int
}

// schedule plans session starts over the period: busier and quieter
// agents, fewer sessions at weekends, mostly daytime starts, all early
// enough in the day that a session ends before the period does.
func schedule(g *gen, agents []*agent, o Options, start time.Time) []slot {
	var out []slot
	for d := range o.Days {
		day := start.AddDate(0, 0, d)
		wk := 1.0
		if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
			wk = 0.6
		}
		for ai, a := range agents {
			mean := o.SessionsPerAgentDay * a.weight * wk
			n := int(mean)
			if g.rng.Float64() < mean-float64(n) {
				n++
			}
			for range n {
				h := 9*time.Hour + time.Duration(g.rng.NormFloat64()*float64(4*time.Hour))
				h = max(0, min(h, 20*time.Hour))
				out = append(out, slot{at: day.Add(h).Truncate(time.Millisecond), agent: ai})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}
