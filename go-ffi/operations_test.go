package memsilo

import (
	"sort"
	"testing"
)

// goMethods maps every core operation to the DB method that calls it. A new operation in
// the core fails this test until the Go API covers it.
var goMethods = map[string]string{
	"create_tenant": "CreateTenant", "list_tenants": "ListTenants", "get_tenant": "GetTenant",
	"update_tenant": "UpdateTenant", "delete_tenant": "DeleteTenant",
	"rotate_tenant_key": "RotateTenantKey", "get_key_rotation": "GetKeyRotation",
	"rotate_instance_key": "RotateInstanceKey", "get_instance_key_rotation": "GetInstanceKeyRotation",
	"add_member": "AddMember", "list_members": "ListMembers", "remove_member": "RemoveMember",
	"create_namespace": "CreateNamespace", "list_namespaces": "ListNamespaces",
	"get_namespace": "GetNamespace", "delete_namespace": "DeleteNamespace",
	"get_memory_policy": "GetMemoryPolicy", "set_memory_policy": "SetMemoryPolicy",
	"create_key": "CreateKey", "list_keys": "ListKeys", "revoke_key": "RevokeKey", "rotate_key": "RotateKey",
	"store_memory": "StoreMemory", "store_memories": "StoreMemories", "recall": "Recall",
	"get_memory": "GetMemory", "get_memories": "GetMemories", "update_memory": "UpdateMemory",
	"list_memories": "ListMemories", "count_memories": "CountMemories",
	"delete_memory": "DeleteMemory", "batch_forget": "BatchForget",
	"add_entity": "AddEntity", "add_relation": "AddRelation", "get_entity": "GetEntity",
	"neighbors": "Neighbors", "subgraph": "Subgraph", "shortest_path": "ShortestPath",
	"delete_entity": "DeleteEntity", "delete_relation": "DeleteRelation", "whoami": "WhoAmI",
	"list_audit": "ListAudit", "verify_audit": "VerifyAudit",
	"export_namespace": "ExportNamespace", "import_namespace": "ImportNamespace",
	"start_session": "StartSession", "end_session": "EndSession", "get_session": "GetSession",
	"list_sessions": "ListSessions", "session_memories": "SessionMemories",
}

func TestEveryCoreOperationHasAGoMethod(t *testing.T) {
	ops, err := Operations()
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, op := range ops {
		if _, ok := goMethods[op]; !ok {
			missing = append(missing, op)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("core operations without a Go method: %v", missing)
	}
	if len(ops) != len(goMethods) {
		t.Fatalf("core has %d operations, the Go table %d", len(ops), len(goMethods))
	}
}
