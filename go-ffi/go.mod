module github.com/memsilo/memsilo-go

go 1.22
