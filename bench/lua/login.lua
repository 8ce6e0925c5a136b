-- POST /user/login with the seed user's form.
wrk.method = "POST"
wrk.body = "userName=micro&pwd=123"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
dofile(os.getenv("WRK_REPORT"))
