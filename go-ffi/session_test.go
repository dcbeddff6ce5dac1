package memsilo

import "testing"

func TestSessionsStartEndListAndCountTheirMemories(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "ns", nil)).must(t)
	s := of(db.StartSession(bg, "ns", StartSessionRequest{ID: "chat-1", AgentID: "bot"})).must(t)
	if s.ID != "chat-1" || s.EndedAt != nil || s.AgentID == nil || *s.AgentID != "bot" {
		t.Fatalf("started: %+v", s)
	}
	_, err := db.StartSession(bg, "ns", StartSessionRequest{ID: "chat-1"})
	wantCode(t, err, CodeConflict)
	of(db.StoreMemory(bg, "ns", StoreMemoryRequest{Content: "asked about SSO", SessionID: "chat-1"})).must(t)
	page0 := of(db.SessionMemories(bg, "ns", "chat-1", 0, 0)).must(t)
	if page0.TotalCount != 1 || page0.Memories[0].Content != "asked about SSO" {
		t.Fatalf("session memories: %+v", page0)
	}
	ended := of(db.EndSession(bg, "ns", "chat-1", "SSO")).must(t)
	if ended.EndedAt == nil || ended.Summary == nil || *ended.Summary != "SSO" || ended.MemoryCount != 1 {
		t.Fatalf("ended: %+v", ended)
	}
	of(db.StartSession(bg, "ns", StartSessionRequest{})).must(t)
	page := of(db.ListSessions(bg, "ns", ListSessionsRequest{ActiveOnly: true})).must(t)
	if page.TotalCount != 1 || page.Sessions[0].ID == "chat-1" {
		t.Fatalf("active: %+v", page)
	}
	_, err = db.GetSession(bg, "ns", "nope")
	wantCode(t, err, CodeNotFound)
}
