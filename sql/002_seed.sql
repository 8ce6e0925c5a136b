-- The user of the README's curl: micro / 123 (the hash of "123", Argon2id m=19456 t=2 p=1).
INSERT INTO user (user_id, user_name, pwd)
VALUES (10001, 'micro', '$argon2id$v=19$m=19456,t=2,p=1$M4Ciw/8F5ursYW8mMiRXHg$Fiz8IkMIjdGYnV6Y573UngregGC/KyusHUVgzOmmIcY');
