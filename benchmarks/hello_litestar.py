"""Bare Litestar hello-world: the "physical limit" a Litestar route can reach on this machine.

Same app as the shared baseline's Litestar reference: ``GET /hello`` returns a msgspec Struct encoded as
``{"key":"bench_var","value":"hello from the bench variable"}`` (the same key/value runtime_get.sh seeds
into tocsin). No middleware, no auth, no database.

    uvicorn hello_litestar:app --app-dir benchmarks --loop uvloop --http httptools --no-access-log
"""

import msgspec
from litestar import Litestar, get

KEY = "bench_var"
VALUE = "hello from the bench variable"


class VariableResponse(msgspec.Struct):
    key: str
    value: str


@get("/hello")
async def hello() -> VariableResponse:
    return VariableResponse(key=KEY, value=VALUE)


app = Litestar(route_handlers=[hello], debug=False)
