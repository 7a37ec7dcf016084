module github.com/pns-gateway/pns-gateway/clients/go

go 1.22
