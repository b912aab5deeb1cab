// Sends calls with the real @segment/analytics-node client and prints what it sent.
// usage: node send.mjs HOST WRITE_KEY < calls.json   (calls: [{"method": "track", "params": {...}}])
import { Analytics } from '@segment/analytics-node'
import { readFileSync } from 'node:fs'

const [host, writeKey] = process.argv.slice(2)
const calls = JSON.parse(readFileSync(0, 'utf8'))
const analytics = new Analytics({ writeKey, host, maxEventsInBatch: 15, flushInterval: 200, maxRetries: 3 })
const sent = []
const failures = []
analytics.on('error', (err) => failures.push(String(err && (err.reason || err.message || err))))
await Promise.all(
  calls.map(
    ({ method, params }) =>
      new Promise((resolve) => {
        analytics[method](params, (err, ctx) => {
          if (err) failures.push(String(err.reason || err.message || err))
          else sent.push(ctx.event)
          resolve()
        })
      })
  )
)
await analytics.closeAndFlush({ timeout: 10000 })
process.stdout.write(JSON.stringify({ sent, failures }))
