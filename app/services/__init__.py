"""Plain keyword-only functions that join `scoring` to `models`; routers call one each."""
