package memsilo

import (
	"errors"
	"strings"
	"testing"
)

// saasFlow is the multi-tenant flow of a SaaS built on memsilo: tenants provisioned by the
// admin, one namespace and one scoped key each, per-tenant memories, and refusals across
// tenants. It runs the same in-process and against a server.
func saasFlow(t *testing.T, admin *DB) {
	type tenantSetup struct {
		name, ns string
		tenant   *Tenant
		key      *CreatedKey
		db       *DB
	}
	tenants := []*tenantSetup{{name: "acme_corp", ns: "tenant-acme"}, {name: "globex_inc", ns: "tenant-globex"}}
	for _, ts := range tenants {
		ts.tenant = of(admin.CreateTenant(bg, ts.name, &TenantOptions{Quotas: &QuotasPatch{MaxNamespaces: ptr[uint32](5)}})).must(t)
		if ts.tenant.Status != StatusActive || ts.tenant.Quotas.MaxNamespaces != 5 || ts.tenant.Quotas.QPSLimit != 100 {
			t.Fatalf("tenant %s: %+v", ts.name, ts.tenant)
		}
		ns := of(admin.CreateNamespace(bg, ts.ns, &NamespaceOptions{TenantID: ts.tenant.ID})).must(t)
		if ns.TenantID == nil || *ns.TenantID != ts.tenant.ID {
			t.Fatalf("namespace %s not owned by its tenant: %+v", ts.ns, ns)
		}
		ts.key = of(admin.CreateKey(bg, CreateKeyRequest{
			Name:       ts.name + "-backend",
			Namespaces: []NamespaceGrant{{Namespace: ts.ns, Access: AccessWrite}},
		})).must(t)
		if !strings.HasPrefix(ts.key.Key, ts.key.Prefix) || ts.key.Revoked {
			t.Fatalf("key: %+v", ts.key)
		}
		ts.db = of(admin.Scoped(ts.key.Key)).must(t)
		t.Cleanup(func() { ts.db.Close() })
	}
	acme, globex := tenants[0], tenants[1]

	// Each tenant stores and recalls its own memories.
	of(acme.db.StoreMemory(bg, acme.ns, StoreMemoryRequest{
		Content: "Acme Q3 roadmap: launch Omega in September", Importance: ptr(0.9), Tags: []string{"roadmap"},
	})).must(t)
	of(acme.db.StoreMemory(bg, acme.ns, StoreMemoryRequest{Content: "Acme prefers email over phone", AgentID: "customer-c_9k2m"})).must(t)
	of(globex.db.StoreMemory(bg, globex.ns, StoreMemoryRequest{Content: "Globex roadmap: migrate to the cloud"})).must(t)

	hits := of(acme.db.Recall(bg, acme.ns, RecallRequest{Query: "product roadmap", TopK: 5})).must(t)
	if len(hits) != 2 || hits[0].Content != "Acme Q3 roadmap: launch Omega in September" {
		t.Fatalf("acme recall: %+v", hits)
	}
	for _, h := range hits {
		if strings.Contains(h.Content, "Globex") {
			t.Fatalf("acme recalled globex's memory: %+v", h)
		}
	}
	// The key's only namespace is addressed implicitly.
	implicit := of(globex.db.Recall(bg, "", RecallRequest{Query: "roadmap"})).must(t)
	if len(implicit) != 1 || implicit[0].Content != "Globex roadmap: migrate to the cloud" {
		t.Fatalf("globex implicit recall: %+v", implicit)
	}

	// Across tenants: forbidden, with the contract's message, for reads and writes alike.
	_, err := globex.db.Recall(bg, acme.ns, RecallRequest{Query: "roadmap"})
	me := wantCode(t, err, CodeForbidden)
	if me.Message != "Key not authorized for namespace tenant-acme" || me.Status != 403 || me.Namespace != acme.ns {
		t.Fatalf("cross-tenant error: %+v", me)
	}
	_, err = globex.db.StoreMemory(bg, acme.ns, StoreMemoryRequest{Content: "planted"})
	wantCode(t, err, CodeForbidden)
	// A namespace that does not exist looks the same to a scoped key (no enumeration).
	_, err = globex.db.Recall(bg, "tenant-initech", RecallRequest{Query: "x"})
	if me := wantCode(t, err, CodeForbidden); me.Message != "Key not authorized for namespace tenant-initech" {
		t.Fatalf("unknown namespace: %+v", me)
	}

	// Listing: the admin sees both, a scoped key only its own.
	all := of(admin.ListNamespaces(bg, nil)).must(t)
	if all.TotalCount != 2 || len(all.Namespaces) != 2 {
		t.Fatalf("admin list: %+v", all)
	}
	own := of(acme.db.ListNamespaces(bg, nil)).must(t)
	if own.TotalCount != 1 || own.Namespaces[0].Name != acme.ns || own.Namespaces[0].MemoryCount != 2 {
		t.Fatalf("acme list: %+v", own)
	}
	page := of(admin.ListNamespaces(bg, &ListOptions{Limit: ptr[uint64](1)})).must(t)
	if len(page.Namespaces) != 1 || page.TotalCount != 2 || page.NextCursor == "" {
		t.Fatalf("paged list: %+v", page)
	}
	next := of(admin.ListNamespaces(bg, &ListOptions{Limit: ptr[uint64](1), Cursor: page.NextCursor})).must(t)
	if len(next.Namespaces) != 1 || next.Namespaces[0].Name == page.Namespaces[0].Name || next.NextCursor != "" {
		t.Fatalf("the page after %+v: %+v", page, next)
	}
	_, err = admin.ListNamespaces(bg, &ListOptions{Offset: ptr[uint64](1), Cursor: page.NextCursor})
	if me := wantCode(t, err, CodeInvalidArgument); me.Field != "offset" {
		t.Fatalf("offset with a cursor: %+v", me)
	}

	// Members and tenant usage.
	m := of(admin.AddMember(bg, acme.tenant.ID, "alice@acme.com", RoleEditor, map[string]any{"team": "ml"})).must(t)
	if m.Role != RoleEditor || m.MemberID == "" || m.Message != "Member added successfully to tenant "+acme.tenant.ID {
		t.Fatalf("member: %+v", m)
	}
	_, err = admin.AddMember(bg, acme.tenant.ID, "alice@acme.com", RoleViewer, nil)
	wantCode(t, err, CodeConflict)
	members := of(admin.ListMembers(bg, acme.tenant.ID, nil)).must(t)
	if members.TotalCount != 1 || members.Members[0].UserIdentifier != "alice@acme.com" {
		t.Fatalf("members: %+v", members)
	}
	info := of(admin.GetTenant(bg, acme.tenant.ID)).must(t)
	if info.Usage == nil || info.Usage.Namespaces != 1 || info.Usage.Members != 1 || info.Usage.StorageBytes == 0 {
		t.Fatalf("tenant usage: %+v", info.Usage)
	}
	tenantList := of(admin.ListTenants(bg, nil)).must(t)
	if tenantList.TotalCount != 2 {
		t.Fatalf("tenants: %+v", tenantList)
	}

	// Deleting a namespace: gone at once, for everyone.
	deleted := of(admin.DeleteNamespace(bg, acme.ns)).must(t)
	if deleted.Name != acme.ns || deleted.DeletedAt.IsZero() {
		t.Fatalf("delete: %+v", deleted)
	}
	_, err = admin.GetNamespace(bg, acme.ns)
	wantCode(t, err, CodeNotFound)
	// The key whose only namespace is gone is refused (the core reports it unauthorized).
	_, err = acme.db.Recall(bg, acme.ns, RecallRequest{Query: "roadmap"})
	if me := new(Error); !errors.As(err, &me) || (me.Code != CodeForbidden && me.Code != CodeUnauthorized) {
		t.Fatalf("recall in a deleted namespace: %v", err)
	}
	if left := of(admin.ListNamespaces(bg, nil)).must(t); left.TotalCount != 1 || left.Namespaces[0].Name != globex.ns {
		t.Fatalf("after delete: %+v", left)
	}

	// Keys by namespace: only the keys granted it; revoking under another namespace is not_found.
	granted := of(admin.ListNamespaceKeys(bg, globex.ns, nil)).must(t)
	if granted.TotalCount != 1 || granted.Keys[0].ID != globex.key.ID {
		t.Fatalf("keys of %s: %+v", globex.ns, granted)
	}
	_, err = admin.RevokeNamespaceKey(bg, "no-such-namespace", globex.key.ID)
	wantCode(t, err, CodeNotFound)
	// Revoking a key takes effect on the handle already made.
	of(admin.RevokeNamespaceKey(bg, globex.ns, globex.key.ID)).must(t)
	_, err = globex.db.Recall(bg, globex.ns, RecallRequest{Query: "roadmap"})
	wantCode(t, err, CodeUnauthorized)
	_, err = admin.Scoped(globex.key.Key)
	wantCode(t, err, CodeUnauthorized)
	if !errors.Is(err, &Error{Code: CodeUnauthorized}) {
		t.Fatalf("errors.Is by code: %v", err)
	}
}

func TestSaaSFlowInProcess(t *testing.T) {
	saasFlow(t, openTemp(t))
}
