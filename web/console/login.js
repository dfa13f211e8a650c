// Login: JSON POST with the console's header (the relay refuses state changes without it: CSRF).
document.getElementById('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const err = document.getElementById('error');
  err.textContent = '';
  const res = await fetch('/console/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-requested-with': 'qrkiosk-console' },
    body: JSON.stringify({ email: f.email.value, password: f.password.value }),
  });
  if (res.ok) location.assign('/console');
  else err.textContent = (await res.json().catch(() => ({}))).error?.message ?? `login failed (HTTP ${res.status})`;
});
