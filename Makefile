# Thin aliases for the targets of the old Makefile: each calls one `cargo xtask` command, which
# is where the work (and its help: `cargo xtask --help`) lives. Extra flags: `make dev ARGS=--no-open`.

.PHONY: dev watch down status logs logs-api logs-db logs-web logs-redis shell-api db-shell seed test

dev:        ; cargo xtask dev $(ARGS)
watch:      ; cargo xtask dev --watch $(ARGS)
down:       ; cargo xtask down $(ARGS)
status:     ; cargo xtask status $(ARGS)
logs:       ; cargo xtask logs -f $(ARGS)
logs-api:   ; cargo xtask logs api -f $(ARGS)
logs-db:    ; cargo xtask logs postgres -f $(ARGS)
logs-web:   ; cargo xtask logs web -f $(ARGS)
logs-redis: ; cargo xtask logs redis -f $(ARGS)
shell-api:  ; cargo xtask shell api $(ARGS)
db-shell:   ; cargo xtask db-shell $(ARGS)
seed:       ; cargo xtask seed $(ARGS)
test:       ; cargo xtask test $(ARGS)
