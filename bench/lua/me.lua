-- GET /user/me with the bearer token in the environment (WRK_TOKEN).
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("WRK_TOKEN")
dofile(os.getenv("WRK_REPORT"))
