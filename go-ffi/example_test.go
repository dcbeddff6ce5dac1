package memsilo_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	memsilo "github.com/memsilo/memsilo-go"
)

// The README's Go quick start: a tenant, its namespace and key, and a refusal across tenants.
func Example() {
	dir, _ := os.MkdirTemp("", "memsilo-example")
	defer os.RemoveAll(dir)
	db, err := memsilo.Open(dir)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	ctx := context.Background()
	acme, _ := db.CreateTenant(ctx, "acme_corp", &memsilo.TenantOptions{
		Quotas: &memsilo.QuotasPatch{QPSLimit: memsilo.Ptr[uint32](50)}})
	_, _ = db.CreateNamespace(ctx, "tenant-acme", &memsilo.NamespaceOptions{TenantID: acme.ID})
	key, _ := db.CreateKey(ctx, memsilo.CreateKeyRequest{Name: "acme-backend",
		Namespaces: []memsilo.NamespaceGrant{{Namespace: "tenant-acme", Access: memsilo.AccessWrite}}})
	scoped, _ := db.Scoped(key.Key)
	defer scoped.Close()
	_, _ = scoped.StoreMemory(ctx, "tenant-acme", memsilo.StoreMemoryRequest{
		Content: "Q3 roadmap: launch Omega", Importance: memsilo.Ptr(0.9), Tags: []string{"roadmap"}})
	hits, _ := scoped.Recall(ctx, "tenant-acme", memsilo.RecallRequest{Query: "product roadmap", TopK: 5})
	fmt.Println(len(hits), hits[0].Content)
	_, err = scoped.Recall(ctx, "tenant-globex", memsilo.RecallRequest{Query: "roadmap"})
	var me *memsilo.Error
	if errors.As(err, &me) && me.Code == memsilo.CodeForbidden {
		fmt.Println(me.Status, me.Message)
	}
	// Output:
	// 1 Q3 roadmap: launch Omega
	// 403 Key not authorized for namespace tenant-globex
}
