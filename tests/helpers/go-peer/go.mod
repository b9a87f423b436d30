module ekuwatch/go-peer

go 1.19
