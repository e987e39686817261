module mtlsgo

go 1.19
