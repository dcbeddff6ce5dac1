package memsilo

import (
	"fmt"
	"testing"
)

func TestMemoryLifecycleAndVectorRecall(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "vecs", &NamespaceOptions{Dimensions: ptr[uint32](3)})).must(t)

	ids := of(db.StoreMemories(bg, "vecs", []StoreMemoryRequest{
		{Content: "x axis", Embedding: []float32{1, 0, 0}, Tags: []string{"axis"}},
		{Content: "y axis", Embedding: []float32{0, 1, 0}, Tags: []string{"axis"}, Importance: ptr(0.9)},
		{Content: "z axis", Embedding: []float32{0, 0, 1}, Metadata: map[string]any{"k": "v"}, AgentID: "bob"},
	})).must(t)
	if len(ids) != 3 {
		t.Fatalf("ids: %v", ids)
	}
	// All or nothing: one bad vector in a batch stores none of it.
	_, err := db.StoreMemories(bg, "vecs", []StoreMemoryRequest{
		{Content: "ok", Embedding: []float32{1, 1, 0}},
		{Content: "wrong size", Embedding: []float32{1, 1}},
	})
	wantCode(t, err, CodeInvalidArgument)
	if ns := of(db.GetNamespace(bg, "vecs")).must(t); ns.MemoryCount != 3 {
		t.Fatalf("a failed batch stored something: %+v", ns)
	}

	// Vector-only recall crosses as raw floats; with filters it goes through JSON. Same answers.
	hits := of(db.Recall(bg, "vecs", RecallRequest{Vector: []float32{0.1, 0.9, 0}, TopK: 2})).must(t)
	if len(hits) != 2 || hits[0].ID != ids[1] || hits[0].Content != "y axis" {
		t.Fatalf("vector recall: %+v", hits)
	}
	filtered := of(db.Recall(bg, "vecs", RecallRequest{Vector: []float32{0.1, 0.9, 0}, TopK: 2, Tags: []string{"axis"}})).must(t)
	if len(filtered) != 2 || filtered[0].ID != ids[1] || filtered[1].ID != ids[0] {
		t.Fatalf("filtered vector recall: %+v", filtered)
	}
	_, err = db.Recall(bg, "vecs", RecallRequest{Vector: []float32{1, 0}})
	wantCode(t, err, CodeInvalidArgument)

	m := of(db.GetMemory(bg, "vecs", ids[2])).must(t)
	if m.Content != "z axis" || m.AgentID == nil || *m.AgentID != "bob" || m.Metadata["k"] != "v" {
		t.Fatalf("get: %+v", m)
	}
	if d := of(db.DeleteMemory(bg, "vecs", ids[2])).must(t); !d.Deleted || d.ID != ids[2] {
		t.Fatalf("delete: %+v", d)
	}
	_, err = db.GetMemory(bg, "vecs", ids[2])
	wantCode(t, err, CodeNotFound)

	if n := of(db.BatchForget(bg, "vecs", ForgetRequest{Tags: []string{"axis"}})).must(t); n != 2 {
		t.Fatalf("forgot %d, want 2", n)
	}
	if hits := of(db.Recall(bg, "vecs", RecallRequest{Vector: []float32{1, 1, 1}})).must(t); len(hits) != 0 {
		t.Fatalf("recall after forget: %+v", hits)
	}
}

func TestPolicyTenantUpdateKeysAndWhoAmI(t *testing.T) {
	db := openTemp(t)
	if id := of(db.WhoAmI(bg)).must(t); id.Principal != "root" {
		t.Fatalf("whoami: %+v", id)
	}
	tenant := of(db.CreateTenant(bg, "acme_corp", nil)).must(t)
	of(db.CreateNamespace(bg, "tenant-acme", &NamespaceOptions{TenantID: tenant.ID})).must(t)

	policy := DecayPolicy{DecayRate: 0.01, MinImportance: 0.2, TTLDefault: ptr[uint64](3600)}
	of(db.SetMemoryPolicy(bg, "tenant-acme", policy)).must(t)
	got := of(db.GetMemoryPolicy(bg, "tenant-acme")).must(t)
	if got.DecayRate != 0.01 || got.MinImportance != 0.2 || got.TTLDefault == nil || *got.TTLDefault != 3600 {
		t.Fatalf("policy: %+v", got)
	}

	updated := of(db.UpdateTenant(bg, tenant.ID, TenantUpdate{Quotas: &QuotasPatch{QPSLimit: ptr[uint32](500)}})).must(t)
	if updated.Quotas.QPSLimit != 500 || updated.Name != "acme_corp" {
		t.Fatalf("update: %+v", updated)
	}

	member := of(db.AddMember(bg, tenant.ID, "ed@acme.com", RoleEditor, nil)).must(t)
	memberKey := of(db.CreateKey(bg, CreateKeyRequest{Name: "ed", TenantID: tenant.ID, MemberID: member.MemberID})).must(t)
	ed := of(db.Scoped(memberKey.Key)).must(t)
	defer ed.Close()
	id := of(ed.WhoAmI(bg)).must(t)
	if id.Principal != "member" || id.Role != RoleEditor || id.TenantID == nil || *id.TenantID != tenant.ID {
		t.Fatalf("member whoami: %+v", id)
	}
	of(ed.StoreMemory(bg, "tenant-acme", StoreMemoryRequest{Content: "editors write"})).must(t)
	_, err := ed.CreateTenant(bg, "other_co", nil)
	wantCode(t, err, CodeForbidden)

	keys := of(db.ListKeys(bg, nil)).must(t)
	if keys.TotalCount != 1 || keys.Keys[0].ID != memberKey.ID {
		t.Fatalf("keys: %+v", keys)
	}
	rotated := of(db.RotateKey(bg, memberKey.ID)).must(t)
	if rotated.Key == memberKey.Key {
		t.Fatal("rotation kept the secret")
	}
	_, err = db.Scoped(memberKey.Key)
	wantCode(t, err, CodeUnauthorized)
	ed2 := of(db.Scoped(rotated.Key)).must(t)
	defer ed2.Close()

	// Removing the member revokes its keys.
	removed := of(db.RemoveMember(bg, tenant.ID, member.MemberID)).must(t)
	if removed.MemberID != member.MemberID || removed.RemovedAt.IsZero() {
		t.Fatalf("remove: %+v", removed)
	}
	_, err = ed2.WhoAmI(bg)
	wantCode(t, err, CodeUnauthorized)

	// A parent with a child cannot be deleted; the child can, then the parent.
	child := of(db.CreateTenant(bg, "acme_eu", &TenantOptions{ParentID: tenant.ID})).must(t)
	_, err = db.DeleteTenant(bg, tenant.ID)
	wantCode(t, err, CodeConflict)
	of(db.DeleteTenant(bg, child.ID)).must(t)
	deleted := of(db.DeleteTenant(bg, tenant.ID)).must(t)
	if deleted.DeletedAt == nil || deleted.ID != tenant.ID {
		t.Fatalf("delete tenant: %+v", deleted)
	}
	_, err = db.GetNamespace(bg, "tenant-acme")
	wantCode(t, err, CodeNotFound)
	if list := of(db.ListTenants(bg, nil)).must(t); list.TotalCount != 0 {
		t.Fatalf("tenants left: %+v", list)
	}
}

func TestCallerIDsUpsertGetMemoriesAndUpdate(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "docs", nil)).must(t)
	first := of(db.StoreMemory(bg, "docs", StoreMemoryRequest{ID: "doc/1", Content: "first", SessionID: "s-1"})).must(t)
	if first.ID != "doc/1" || first.MemoryType != Episodic || first.SessionID == nil || *first.SessionID != "s-1" {
		t.Fatalf("store: %+v", first)
	}
	again := of(db.StoreMemory(bg, "docs", StoreMemoryRequest{ID: "doc/1", Content: "second", MemoryType: Semantic})).must(t)
	if !again.CreatedAt.Equal(first.CreatedAt) || again.MemoryType != Semantic {
		t.Fatalf("upsert: %+v vs %+v", again, first)
	}
	_, err := db.StoreMemories(bg, "docs", []StoreMemoryRequest{{ID: "x", Content: "a"}, {ID: "x", Content: "b"}})
	if e := wantCode(t, err, CodeInvalidArgument); e.Field != "memories[1].id" {
		t.Fatalf("field: %+v", e)
	}
	got := of(db.GetMemories(bg, "docs", []string{"absent", "doc/1"}, true)).must(t)
	if len(got) != 1 || got[0].ID != "doc/1" || len(got[0].Vector) == 0 {
		t.Fatalf("get_memories: %+v", got)
	}
	updated := of(db.UpdateMemory(bg, "docs", "doc/1", UpdateMemoryRequest{Metadata: map[string]any{"tier": "gold"}, Importance: ptr(0.1)})).must(t)
	if updated.Content != "second" || updated.Metadata["tier"] != "gold" || updated.Importance != 0.1 {
		t.Fatalf("update: %+v", updated)
	}
	_, err = db.UpdateMemory(bg, "docs", "absent", UpdateMemoryRequest{Importance: ptr(0.2)})
	wantCode(t, err, CodeNotFound)
}

func TestListByCursorCountAndFilters(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "l", nil)).must(t)
	var batch []StoreMemoryRequest
	for i := 0; i < 9; i++ {
		batch = append(batch, StoreMemoryRequest{ID: fmt.Sprintf("m%d", i), Content: fmt.Sprintf("note %d", i),
			Metadata: map[string]any{"n": i}, SessionID: fmt.Sprintf("s%d", i%2)})
	}
	of(db.StoreMemories(bg, "l", batch)).must(t)
	seen := map[string]bool{}
	cursor := ""
	for {
		page := of(db.ListMemories(bg, "l", ListMemoriesRequest{Limit: 4, Cursor: cursor})).must(t)
		for _, m := range page.Memories {
			if seen[m.ID] {
				t.Fatalf("%s twice", m.ID)
			}
			seen[m.ID] = true
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if len(seen) != 9 {
		t.Fatalf("listed %d of 9", len(seen))
	}
	if n := of(db.CountMemories(bg, "l", Filter{"session_id": "s0", "metadata.n": Filter{"$gte": 4}})).must(t); n != 3 {
		t.Fatalf("count %d", n)
	}
	hits := of(db.Recall(bg, "l", RecallRequest{Query: "note", TopK: 20, Filter: Filter{"metadata.n": Filter{"$in": []int{1, 2}}}})).must(t)
	if len(hits) != 2 {
		t.Fatalf("filtered recall: %+v", hits)
	}
	_, err := db.CountMemories(bg, "l", Filter{"metadata.n": Filter{"$bogus": 1}})
	if e := wantCode(t, err, CodeInvalidArgument); e.Field != "filter.metadata.n.$bogus" {
		t.Fatalf("field: %+v", e)
	}
	if n := of(db.BatchForget(bg, "l", ForgetRequest{Filter: Filter{"session_id": "s1"}})).must(t); n != 4 {
		t.Fatalf("forgot %d", n)
	}
}
