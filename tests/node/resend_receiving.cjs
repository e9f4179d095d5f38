// Reads received mail with the official Resend Node SDK's `emails.receiving`, unmodified.
//
// Run by the suite with RESEND_BASE_URL pointing at a test server's /v1, RESEND_API_KEY set to a
// tenant key whose domain received one message with one attachment, and MISSIVE_TEST_NODE naming
// the folder the SDK is installed in. Prints one JSON object of what the SDK returned.
const path = require("node:path");
const { Resend } = require(path.join(process.env.MISSIVE_TEST_NODE, "node_modules", "resend"));

async function main() {
  const resend = new Resend(process.env.RESEND_API_KEY);
  const list = await resend.emails.receiving.list();
  const id = list.data.data[0].id;
  const got = await resend.emails.receiving.get(id);
  const attachments = await resend.emails.receiving.attachments.list({ emailId: id });
  const attachment = await resend.emails.receiving.attachments.get({
    emailId: id,
    id: attachments.data.data[0].id,
  });
  const missing = await resend.emails.receiving.get("00000000-0000-7000-8000-000000000000");
  console.log(JSON.stringify({ list, got, attachments, attachment, missing }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
