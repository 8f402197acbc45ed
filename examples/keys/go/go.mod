module example.com/pglocks-key

go 1.19
