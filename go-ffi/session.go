package memsilo

import (
	"context"
	"time"
)

// Session is a named span of an agent's work in a namespace. Its memories are the
// namespace's memories whose SessionID is its ID.
type Session struct {
	ID          string         `json:"id"`
	Namespace   string         `json:"namespace"`
	AgentID     *string        `json:"agent_id"`
	Metadata    map[string]any `json:"metadata"`
	StartedAt   time.Time      `json:"started_at"`
	EndedAt     *time.Time     `json:"ended_at"` // nil while active
	Summary     *string        `json:"summary"`
	MemoryCount uint64         `json:"memory_count"`
}

// StartSessionRequest is what StartSession takes; every field is optional (ID: a UUID v7
// when empty).
type StartSessionRequest struct {
	ID       string         `json:"id,omitempty"`
	AgentID  string         `json:"agent_id,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// ListSessionsRequest filters and pages ListSessions.
type ListSessionsRequest struct {
	AgentID    string `json:"agent_id,omitempty"`
	ActiveOnly bool   `json:"active_only,omitempty"`
	Offset     uint64 `json:"offset,omitempty"`
	Limit      uint64 `json:"limit,omitempty"`
}

// SessionPage is one page of ListSessions, oldest first.
type SessionPage struct {
	Sessions   []Session `json:"sessions"`
	TotalCount uint64    `json:"total_count"`
}

// StartSession starts a session in ns (CodeConflict if ns has one with req.ID).
func (db *DB) StartSession(ctx context.Context, ns string, req StartSessionRequest) (*Session, error) {
	args := struct {
		nsField
		StartSessionRequest
	}{nsField{ns}, req}
	var s Session
	if _, err := db.call(ctx, "start_session", args, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// EndSession ends session id with an optional summary; ending an ended session returns it
// unchanged (CodeNotFound if absent).
func (db *DB) EndSession(ctx context.Context, ns, id, summary string) (*Session, error) {
	args := struct {
		nsField
		ID      string `json:"id"`
		Summary string `json:"summary,omitempty"`
	}{nsField{ns}, id, summary}
	var s Session
	if _, err := db.call(ctx, "end_session", args, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// GetSession reads one session (CodeNotFound if absent).
func (db *DB) GetSession(ctx context.Context, ns, id string) (*Session, error) {
	var s Session
	if _, err := db.call(ctx, "get_session", memoryArgs{nsField{ns}, id}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ListSessions lists the sessions of ns, oldest first.
func (db *DB) ListSessions(ctx context.Context, ns string, req ListSessionsRequest) (*SessionPage, error) {
	args := struct {
		nsField
		ListSessionsRequest
	}{nsField{ns}, req}
	var page SessionPage
	if _, err := db.call(ctx, "list_sessions", args, &page); err != nil {
		return nil, err
	}
	if page.Sessions == nil {
		page.Sessions = []Session{}
	}
	return &page, nil
}

// SessionMemoryPage is one page of SessionMemories, oldest first.
type SessionMemoryPage struct {
	Memories   []Memory `json:"memories"`
	TotalCount uint64   `json:"total_count"`
}

// SessionMemories reads a session's live memories, oldest first (limit 0: the default 50).
func (db *DB) SessionMemories(ctx context.Context, ns, id string, offset, limit uint64) (*SessionMemoryPage, error) {
	args := struct {
		nsField
		ID     string `json:"id"`
		Offset uint64 `json:"offset,omitempty"`
		Limit  uint64 `json:"limit,omitempty"`
	}{nsField{ns}, id, offset, limit}
	var page SessionMemoryPage
	if _, err := db.call(ctx, "session_memories", args, &page); err != nil {
		return nil, err
	}
	if page.Memories == nil {
		page.Memories = []Memory{}
	}
	return &page, nil
}
