package kafka

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	kgo "github.com/segmentio/kafka-go"

	"github.com/lineaged/lineaged/sink/spool"
)

type metrics struct {
	written, delivered, dropped           prometheus.Counter
	encodeErrors, spoolErrors, sendErrors prometheus.Counter
	refused, deadLetterErrors             prometheus.Counter
	ackLatency                            prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, w *kgo.Writer, sp *spool.Spool) *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "lineaged_kafka_" + name, Help: help})
	}
	m := &metrics{
		written:          c("events_spooled_total", "Events appended to the spool."),
		delivered:        c("events_delivered_total", "Events acknowledged by the brokers (acks=all)."),
		dropped:          c("events_dropped_total", "Spooled events dropped because the spool was full or damaged."),
		encodeErrors:     c("encode_errors_total", "Events that could not be encoded."),
		spoolErrors:      c("spool_errors_total", "Events the spool refused (its memory queue for the disk full)."),
		sendErrors:       c("produce_errors_total", "Failed produce attempts (retried from the spool)."),
		refused:          c("events_refused_total", "Events the brokers refused for good (too large, invalid, not authorised), moved to the dead-letter file."),
		deadLetterErrors: c("dead_letter_errors_total", "Refused events that could not be written to the dead-letter file (counted in events_refused_total too)."),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lineaged_kafka_ack_latency_seconds",
			Help:    "Time from Write to broker acknowledgement.",
			Buckets: []float64{.001, .002, .005, .01, .025, .05, .1, .5, 1, 5, 30, 300},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.written, m.delivered, m.dropped, m.encodeErrors, m.spoolErrors, m.sendErrors, m.refused, m.deadLetterErrors, m.ackLatency,
			&writerCollector{w: w}, &spoolCollector{sp: sp})
	}
	return m
}

var (
	descWriterCounter = prometheus.NewDesc("lineaged_kafka_writer_total",
		"kafka-go Writer counters (Stats()), by counter name.", []string{"counter"}, nil)
	descWriterAvg = prometheus.NewDesc("lineaged_kafka_writer_seconds_avg",
		"kafka-go Writer mean durations since the previous scrape, by phase.", []string{"phase"}, nil)
	descWriterMax = prometheus.NewDesc("lineaged_kafka_writer_seconds_max",
		"kafka-go Writer max durations since the previous scrape, by phase.", []string{"phase"}, nil)
	descWriterBatch = prometheus.NewDesc("lineaged_kafka_writer_batch_size_avg",
		"kafka-go Writer mean batch size since the previous scrape.", nil, nil)
	descSpoolBytes       = prometheus.NewDesc("lineaged_kafka_spool_bytes", "Bytes in the spool.", nil, nil)
	descSpoolPending     = prometheus.NewDesc("lineaged_kafka_spool_pending_events", "Events spooled and not yet acknowledged.", nil, nil)
	descSpoolSegs        = prometheus.NewDesc("lineaged_kafka_spool_segments", "Segment files in the spool.", nil, nil)
	descSpoolFsyncs      = prometheus.NewDesc("lineaged_kafka_spool_fsyncs_total", "Group fsyncs of the spool.", nil, nil)
	descSpoolWriteErrors = prometheus.NewDesc("lineaged_kafka_spool_write_errors_total",
		"Failed spool writes and fsyncs (ENOSPC, EIO), each recovered by dropping the oldest records (events_dropped_total).", nil, nil)
	descSpoolRefused = prometheus.NewDesc("lineaged_kafka_spool_refused_total",
		"Events refused because the spool's memory queue for the disk was full (also in spool_errors_total).", nil, nil)
)

// writerCollector exports kafka-go's Writer.Stats(). Stats() returns
// counters as deltas since its previous call, so they are accumulated here.
type writerCollector struct {
	w   *kgo.Writer
	mu  sync.Mutex
	acc map[string]int64
}

func (c *writerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWriterCounter
	ch <- descWriterAvg
	ch <- descWriterMax
	ch <- descWriterBatch
}

func (c *writerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.w.Stats()
	c.mu.Lock()
	if c.acc == nil {
		c.acc = map[string]int64{}
	}
	for name, v := range map[string]int64{
		"writes": st.Writes, "messages": st.Messages, "bytes": st.Bytes,
		"errors": st.Errors, "retries": st.Retries, "dials": st.Dials,
	} {
		c.acc[name] += v
		ch <- prometheus.MustNewConstMetric(descWriterCounter, prometheus.CounterValue, float64(c.acc[name]), name)
	}
	c.mu.Unlock()
	for phase, d := range map[string]kgo.DurationStats{
		"batch": st.BatchTime, "batch_queue": st.BatchQueueTime, "write": st.WriteTime, "wait": st.WaitTime, "dial": st.DialTime,
	} {
		ch <- prometheus.MustNewConstMetric(descWriterAvg, prometheus.GaugeValue, d.Avg.Seconds(), phase)
		ch <- prometheus.MustNewConstMetric(descWriterMax, prometheus.GaugeValue, d.Max.Seconds(), phase)
	}
	ch <- prometheus.MustNewConstMetric(descWriterBatch, prometheus.GaugeValue, float64(st.BatchSize.Avg))
}

type spoolCollector struct{ sp *spool.Spool }

func (c *spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSpoolBytes
	ch <- descSpoolPending
	ch <- descSpoolSegs
	ch <- descSpoolFsyncs
	ch <- descSpoolWriteErrors
	ch <- descSpoolRefused
}

func (c *spoolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.sp.Stats()
	ch <- prometheus.MustNewConstMetric(descSpoolBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descSpoolPending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(descSpoolSegs, prometheus.GaugeValue, float64(st.Segments))
	ch <- prometheus.MustNewConstMetric(descSpoolFsyncs, prometheus.CounterValue, float64(st.Fsyncs))
	ch <- prometheus.MustNewConstMetric(descSpoolWriteErrors, prometheus.CounterValue, float64(st.WriteErrors))
	ch <- prometheus.MustNewConstMetric(descSpoolRefused, prometheus.CounterValue, float64(st.Refused))
}
