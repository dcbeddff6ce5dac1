package memsilo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A tenant's own key is made in the keyring given with WithKeyring and destroyed with the
// tenant; a keyring inside the data directory and a tenant key without a keyring are refused.
func TestTenantKeysLiveInTheKeyring(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	db := of(Open(filepath.Join(dir, "data"), WithKeyring(keys))).must(t)
	t.Cleanup(func() { db.Close() })
	tenant := of(db.CreateTenant(bg, "go_keyed", &TenantOptions{IsolationMode: IsolationHybrid, EncryptionKeyID: "go-key"})).must(t)
	if tenant.EncryptionKeyID == nil || *tenant.EncryptionKeyID != "go-key" {
		t.Fatalf("encryption_key_id: %v", tenant.EncryptionKeyID)
	}
	if _, err := os.Stat(filepath.Join(keys, "go-key")); err != nil {
		t.Fatalf("the key is not in the keyring: %v", err)
	}
	_, err := db.CreateTenant(bg, "go_shared", &TenantOptions{IsolationMode: IsolationLogical, EncryptionKeyID: "other"})
	wantCode(t, err, CodeInvalidArgument)
	of(db.DeleteTenant(bg, tenant.ID)).must(t)
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(filepath.Join(keys, "go-key")); os.IsNotExist(err) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(keys, "go-key")); !os.IsNotExist(err) {
		t.Fatalf("the key outlived its tenant: %v", err)
	}

	_, err = Open(filepath.Join(dir, "other"), WithKeyring(filepath.Join(dir, "other", "keys")))
	wantCode(t, err, CodeInvalidArgument)
	if err == nil || !strings.Contains(err.Error(), "never written next to the data") {
		t.Fatalf("keyring inside the data directory: %v", err)
	}
	plain := openTemp(t)
	_, err = plain.CreateTenant(bg, "go_nokeys", &TenantOptions{IsolationMode: IsolationPhysical, EncryptionKeyID: "k"})
	wantCode(t, err, CodeInvalidArgument)
}

// A tenant's key is rotated online and the rotation polled until done; the old key is
// destroyed once no file uses it.
func TestTenantKeyRotation(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	db := of(Open(filepath.Join(dir, "data"), WithKeyring(keys))).must(t)
	t.Cleanup(func() { db.Close() })
	tenant := of(db.CreateTenant(bg, "go_rotated", &TenantOptions{IsolationMode: IsolationHybrid, EncryptionKeyID: "go-old"})).must(t)
	of(db.CreateNamespace(bg, "go-rotated-ns", &NamespaceOptions{TenantID: tenant.ID})).must(t)
	started := of(db.RotateTenantKey(bg, tenant.ID, "go-new")).must(t)
	if started.NewKeyID != "go-new" || started.OldKeyID == nil || *started.OldKeyID != "go-old" {
		t.Fatalf("rotation: %+v", started)
	}
	var status *KeyRotation
	for i := 0; i < 100; i++ {
		status = of(db.GetKeyRotation(bg, tenant.ID)).must(t)
		if _, err := os.Stat(filepath.Join(keys, "go-old")); status.State == "done" && os.IsNotExist(err) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status.State != "done" || status.EnvironmentsDone != status.EnvironmentsTotal || status.FinishedAt == nil {
		t.Fatalf("rotation did not finish: %+v", status)
	}
	if _, err := os.Stat(filepath.Join(keys, "go-old")); !os.IsNotExist(err) {
		t.Fatalf("the old key outlived the rotation: %v", err)
	}
}

// The instance key is rotated online and polled until done; the old key is destroyed once no
// file uses it. A plain directory has none to rotate, locally and over HTTP alike.
func TestInstanceKeyRotation(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	db := of(Open(filepath.Join(dir, "data"), WithKeyring(keys))).must(t)
	t.Cleanup(func() { db.Close() })
	of(db.CreateNamespace(bg, "go-instance-ns", nil)).must(t)
	// A first write makes the namespace's shard file (a file under the instance key).
	of(db.StoreMemory(bg, "go-instance-ns", StoreMemoryRequest{Content: "kept across the rotation"})).must(t)
	started := of(db.RotateInstanceKey(bg, "go-instance-2")).must(t)
	if started.OldKeyID != "instance" || started.NewKeyID != "go-instance-2" || started.EnvironmentsTotal < 2 {
		t.Fatalf("rotation: %+v", started)
	}
	var status *InstanceKeyRotation
	for i := 0; i < 100; i++ {
		status = of(db.GetInstanceKeyRotation(bg)).must(t)
		if _, err := os.Stat(filepath.Join(keys, "instance")); status.State == "done" && os.IsNotExist(err) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status.State != "done" || status.EnvironmentsDone != status.EnvironmentsTotal || status.FinishedAt == nil {
		t.Fatalf("rotation did not finish: %+v", status)
	}
	if _, err := os.Stat(filepath.Join(keys, "instance")); !os.IsNotExist(err) {
		t.Fatalf("the old instance key outlived the rotation: %v", err)
	}

	for _, plain := range []*DB{openTemp(t), connectAdmin(t, startCargoServer(t))} {
		_, err := plain.RotateInstanceKey(bg, "")
		wantCode(t, err, CodeInvalidArgument)
		if err == nil || !strings.Contains(err.Error(), "not encrypted") {
			t.Fatalf("plain directory: %v", err)
		}
		_, err = plain.GetInstanceKeyRotation(bg)
		wantCode(t, err, CodeNotFound)
	}
}
