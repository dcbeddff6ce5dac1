package memsilo

import (
	"fmt"
	"strings"
	"testing"
)

// auditFlow checks the audit log through the Go API: actions and refusals are recorded in
// the tenant's chain, filtered, paged by cursor and verified; only admins read it.
func auditFlow(t *testing.T, root *DB) {
	tenant := of(root.CreateTenant(bg, "audited_tenant", nil)).must(t)
	ns := "audit-" + tenant.ID
	of(root.CreateNamespace(bg, ns, &NamespaceOptions{TenantID: tenant.ID})).must(t)
	adminKey := of(root.CreateKey(bg, CreateKeyRequest{Name: "admin", TenantID: tenant.ID, Role: RoleAdmin})).must(t)
	viewerKey := of(root.CreateKey(bg, CreateKeyRequest{Name: "viewer", TenantID: tenant.ID, Role: RoleViewer})).must(t)
	admin := of(root.Scoped(adminKey.Key)).must(t)
	t.Cleanup(func() { admin.Close() })
	viewer := of(root.Scoped(viewerKey.Key)).must(t)
	t.Cleanup(func() { viewer.Close() })

	of(admin.AddMember(bg, tenant.ID, "cy@example.com", RoleEditor, nil)).must(t)
	_, err := viewer.StoreMemory(bg, ns, StoreMemoryRequest{Content: "GO-SECRET-MARK"})
	wantCode(t, err, CodeForbidden)
	_, err = viewer.ListAudit(bg, tenant.ID, nil)
	wantCode(t, err, CodeForbidden)
	_, err = admin.VerifyAudit(bg, InstanceAudit)
	wantCode(t, err, CodeForbidden)

	page := of(admin.ListAudit(bg, tenant.ID, &ListAuditOptions{Limit: ptr[uint64](100)})).must(t)
	var got []string
	for _, e := range page.Entries {
		got = append(got, e.Action+":"+e.Result)
		if strings.Contains(fmt.Sprintf("%+v", e), "GO-SECRET-MARK") {
			t.Fatalf("content in the audit log: %+v", e)
		}
	}
	want := "create_tenant:ok create_namespace:ok create_key:ok create_key:ok add_member:ok store_memory:refused list_audit:refused verify_audit:refused"
	if strings.Join(got, " ") != want || page.NextCursor != nil {
		t.Fatalf("audit log: %v (next %v)", got, page.NextCursor)
	}
	refused := of(admin.ListAudit(bg, tenant.ID, &ListAuditOptions{Actor: viewerKey.ID})).must(t)
	if len(refused.Entries) != 2 || refused.Entries[0].Status != 403 || *refused.Entries[0].Actor.KeyPrefix != viewerKey.Prefix {
		t.Fatalf("refusals: %+v", refused.Entries)
	}
	first := of(admin.ListAudit(bg, tenant.ID, &ListAuditOptions{Limit: ptr[uint64](5)})).must(t)
	rest := of(admin.ListAudit(bg, tenant.ID, &ListAuditOptions{Cursor: *first.NextCursor})).must(t)
	if len(first.Entries)+len(rest.Entries) != 8 || rest.Entries[0].Seq != 6 {
		t.Fatalf("pages: %d + %d", len(first.Entries), len(rest.Entries))
	}
	v := of(admin.VerifyAudit(bg, tenant.ID)).must(t)
	if !v.OK || v.FirstBroken != nil || v.HeadSeq != 8 || v.HeadHash != page.Entries[7].Hash {
		t.Fatalf("verify: %+v", v)
	}
	_, err = admin.ListAudit(bg, tenant.ID, &ListAuditOptions{Cursor: "x"})
	if me := wantCode(t, err, CodeInvalidArgument); me.Field != "cursor" {
		t.Fatalf("bad cursor: %+v", me)
	}
}

func TestAuditInProcess(t *testing.T) {
	auditFlow(t, openTemp(t))
}

func TestAuditAgainstServer(t *testing.T) {
	auditFlow(t, connectAdmin(t, startCargoServer(t)))
}
